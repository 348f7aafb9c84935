"""sweeps.warm_trials: how many finished trials of earlier sweeps its searcher started from
(search.warm_start); null for a sweep without one.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("warm_trials", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("warm_trials")
