"""trials.params, latency_ms, latency_ms_batch, seconds_to_best: what a model costs beside
what it scores (parameter count, inference ms per image at batch 1 and at a large batch,
training seconds to its best epoch); null for trials trained before they were measured.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None
COLUMNS = ("params", "latency_ms", "latency_ms_batch", "seconds_to_best")


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
