"""trials.repeat_of: the trial whose configuration a repeat trains again with another seed
(spec.repeat, `cifar-sweeps repeat`); null for a trial of the search.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("repeat_of", sa.String(96)))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("repeat_of")
