"""sweeps.notified_at: when the operator's webhooks were told the sweep ended.

A sweep that ends (succeeded, failed, stopped) is announced once to the configured webhooks
(usecases/notify.py); this column records that it was, so a restart or a second service
process never announces it again. Sweeps that ended before this revision are marked as
announced (at their end: every sweep with a finished_at): upgrading must not flood a
receiver with old news.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("notified_at", sa.DateTime))
    op.execute(sa.text("UPDATE sweeps SET notified_at = finished_at WHERE finished_at IS NOT NULL"))


def downgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("notified_at")
