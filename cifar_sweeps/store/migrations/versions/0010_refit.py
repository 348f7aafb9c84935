"""trials.refit_of and trials.train_images; epochs' validation columns nullable.

A refit (a sweep's best configuration trained again on its training and validation images,
tuning/refit.py) is a trial row linked to the search trial it came from (`refit_of`). It has
no validation images of its own, so its epochs have no validation loss or accuracy: those
columns take NULL now. `train_images` is how many images a trial trained on (null for
trials trained before it was recorded).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("refit_of", sa.String(96)))
        batch.add_column(sa.Column("train_images", sa.Integer))
    with op.batch_alter_table("epochs") as batch:
        batch.alter_column("val_loss", existing_type=sa.Float, nullable=True)
        batch.alter_column("val_acc", existing_type=sa.Float, nullable=True)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM epochs WHERE val_acc IS NULL OR val_loss IS NULL"))
    with op.batch_alter_table("epochs") as batch:
        batch.alter_column("val_acc", existing_type=sa.Float, nullable=False)
        batch.alter_column("val_loss", existing_type=sa.Float, nullable=False)
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("train_images")
        batch.drop_column("refit_of")
