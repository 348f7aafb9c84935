"""The schema as it was before migrations existed (stores made then were created with
create_all): tables are created only where they are missing, so such a store is adopted as
it is and a new store gets the same tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _sweeps() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data_source", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("ray_job_id", sa.String(128)),
        sa.Column("code_version", sa.String(64), nullable=False),
        sa.Column("experiment_path", sa.String(2048)),
        sa.Column("driver_host", sa.String(256)),
        sa.Column("driver_pid", sa.Integer()),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text()),
    )
    op.create_index("ix_sweeps_name", "sweeps", ["name"])
    op.create_index("ix_sweeps_status", "sweeps", ["status"])


def _trials() -> None:
    op.create_table(
        "trials",
        sa.Column("id", sa.String(96), primary_key=True),
        sa.Column("sweep_id", sa.String(32), sa.ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tune_trial_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("val_acc", sa.Float()),
        sa.Column("val_loss", sa.Float()),
        sa.Column("test_acc", sa.Float()),
        sa.Column("best_epoch", sa.Integer()),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("epochs_budget", sa.Integer()),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("checkpoint_path", sa.String(2048)),
        sa.Column("error", sa.Text()),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
    )
    op.create_index("ix_trials_sweep_id", "trials", ["sweep_id"])
    op.create_index("ix_trials_model", "trials", ["model"])
    op.create_index("ix_trials_val_acc", "trials", ["val_acc"])
    op.create_index("ix_trials_rank", "trials", [sa.text("val_acc DESC"), "id"])
    op.create_index("ix_trials_sweep_rank", "trials", ["sweep_id", sa.text("val_acc DESC"), "id"])
    op.create_index("ix_trials_model_rank", "trials", ["model", sa.text("val_acc DESC"), "id"])


def _epochs() -> None:
    op.create_table(
        "epochs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("trial_id", sa.String(96), sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=False),
        sa.Column("train_acc", sa.Float(), nullable=False),
        sa.Column("val_loss", sa.Float(), nullable=False),
        sa.Column("val_acc", sa.Float(), nullable=False),
        sa.Column("lr", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("images_per_s", sa.Float(), nullable=False),
        sa.UniqueConstraint("trial_id", "epoch"),
    )
    op.create_index("ix_epochs_trial_id", "epochs", ["trial_id"])


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in (("sweeps", _sweeps), ("trials", _trials), ("epochs", _epochs)):
        if name not in existing:
            create()


def downgrade() -> None:
    for name in ("epochs", "trials", "sweeps"):
        op.drop_table(name)
