"""sweeps.data_version: a counter bumped by every write to a sweep or its trials, so that a
cached view of one sweep stays valid while other sweeps are written (cache.py).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("data_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("data_version")
