"""sweeps.dataset and sweeps.classes: the data set a sweep's models were trained on and its
class names (the leaderboard ranks models within one data set). Earlier sweeps are filled
in from their data source: every source before this revision was CIFAR-10-shaped (10
classes of 32x32 images), so it is `synthetic` for the generated images and `cifar10` for
the rest.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("dataset", sa.String(128)))
        batch.add_column(sa.Column("classes", sa.JSON))
        batch.create_index("ix_sweeps_dataset", ["dataset"])
    sweeps = sa.table("sweeps", sa.column("data_source", sa.String), sa.column("dataset", sa.String))
    op.execute(
        sweeps.update().values(
            dataset=sa.case((sweeps.c.data_source.like("synthetic:%"), "synthetic"), else_="cifar10")
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_index("ix_sweeps_dataset")
        batch.drop_column("classes")
        batch.drop_column("dataset")
