"""sweeps.reason: why a sweep ended as it did (lifecycle.Reason), a column of its own
rather than a prefix of the error text.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("reason", sa.String(32)))
    # Stores written before: the one signal that travelled as an error prefix.
    op.execute("UPDATE sweeps SET reason = 'disk_low' WHERE error LIKE 'interrupted: the results folder%'")


def downgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("reason")
