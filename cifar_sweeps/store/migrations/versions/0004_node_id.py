"""trials.node_id and epochs.node_id: the Ray node each trial, and each of its epochs, ran on
(a trial retried after its node was lost continues on another).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("trials", "epochs"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("node_id", sa.String(64)))


def downgrade() -> None:
    for table in ("trials", "epochs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("node_id")
