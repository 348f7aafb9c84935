"""sweeps.plan: the cost plan made at submit (plan.py), to show beside the progress and,
once the sweep ends, against what it took; null for a sweep submitted before plans.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("plan", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("plan")
