"""trials.continue_of: a trial trained on from another's last checkpoint.

`cifar-sweeps continue TRIAL_ID --epochs N` (POST /trials/{id}/continue) trains an ended
trial N epochs more, from its last checkpoint, as a new row of the same sweep linked to the
trial it went on from (`continue_of`). Trials made before this revision were continued from
nothing: the column comes in empty.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("continue_of", sa.String(96)))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("continue_of")
