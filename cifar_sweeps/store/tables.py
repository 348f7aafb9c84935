"""The SQL store's tables (SQLAlchemy's declarative models): sweeps, trials, epochs. Their
schema changes only through a migration (migrations/versions/), which a test upgrades a
store of the previous code through; queries.py holds the queries."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cifar_sweeps.store.states import SweepStatus, TrialStatus


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_sweep_id() -> str:
    return "sw-" + secrets.token_hex(5)


class Base(DeclarativeBase):
    pass


class Sweep(Base):
    __tablename__ = "sweeps"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    spec: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True, default=SweepStatus.QUEUED.value)
    data_source: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    ray_job_id: Mapped[str | None] = mapped_column(String(128))
    code_version: Mapped[str] = mapped_column(String(64), default="")
    experiment_path: Mapped[str | None] = mapped_column(String(2048))
    driver_host: Mapped[str | None] = mapped_column(String(256))
    driver_pid: Mapped[int | None] = mapped_column(Integer)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(32))  # lifecycle.Reason: why it ended so
    # Bumped by every write to this sweep or its trials: cached views of one sweep are
    # revalidated against it, so writes to other sweeps leave them valid.
    data_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Finished trials of earlier sweeps its searcher started from (search.warm_start).
    warm_trials: Mapped[int | None] = mapped_column(Integer)
    plan: Mapped[dict | None] = mapped_column(JSON)  # plan.py's plan made at submit
    # When the operator's webhooks were told it ended (usecases/notify.py); None: not yet.
    notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The data set its models were trained on (data.dataset_name) and its class names, set by
    # the driver once the data is loaded: models are ranked within one data set.
    dataset: Mapped[str | None] = mapped_column(String(128), index=True)
    classes: Mapped[list | None] = mapped_column(JSON)


class Trial(Base):
    __tablename__ = "trials"
    # The leaderboard's orders: best first, across sweeps, within one, or for one model.
    __table_args__ = (
        Index("ix_trials_rank", text("val_acc DESC"), "id"),
        Index("ix_trials_sweep_rank", "sweep_id", text("val_acc DESC"), "id"),
        Index("ix_trials_model_rank", "model", text("val_acc DESC"), "id"),
    )
    id: Mapped[str] = mapped_column(String(96), primary_key=True)  # "<sweep id>-<tune trial id>"
    sweep_id: Mapped[str] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    tune_trial_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64), index=True, default="")
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.RUNNING.value)
    val_acc: Mapped[float | None] = mapped_column(Float, index=True)  # best over epochs
    val_loss: Mapped[float | None] = mapped_column(Float)
    test_acc: Mapped[float | None] = mapped_column(Float)  # of the best-validation weights
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    epochs: Mapped[int] = mapped_column(Integer, default=0)  # epochs run
    epochs_budget: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    checkpoint_path: Mapped[str | None] = mapped_column(String(2048))  # best model file
    error: Mapped[str | None] = mapped_column(Text)
    node_id: Mapped[str | None] = mapped_column(String(64))  # the Ray node of its latest epoch
    # The search trial whose configuration this one trains again with another seed (a repeat).
    repeat_of: Mapped[str | None] = mapped_column(String(96))
    # The search trial whose configuration this one trains again on the training and
    # validation images (a refit: tuning/refit.py); its val_acc is that trial's.
    refit_of: Mapped[str | None] = mapped_column(String(96))
    # A continuation (`cifar-sweeps continue`): the trial whose last checkpoint it trained on from.
    continue_of: Mapped[str | None] = mapped_column(String(96))
    train_images: Mapped[int | None] = mapped_column(Integer)  # how many images it trained on
    # Population-based training's steps of this trial, in order (states.Exploit as dicts).
    exploits: Mapped[list | None] = mapped_column(JSON)
    # What the model costs (measured once per trial, after its first epoch, on its device).
    params: Mapped[float | None] = mapped_column(Float)  # parameter count
    latency_ms: Mapped[float | None] = mapped_column(Float)  # inference ms per image, batch 1
    latency_ms_batch: Mapped[float | None] = mapped_column(Float)  # ms per image at train.LATENCY_BATCH
    seconds_to_best: Mapped[float | None] = mapped_column(Float)  # epoch seconds up to its best epoch
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Epoch(Base):
    __tablename__ = "epochs"
    __table_args__ = (UniqueConstraint("trial_id", "epoch"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float] = mapped_column(Float)
    train_acc: Mapped[float] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)  # None: no validation images (a refit)
    val_acc: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    images_per_s: Mapped[float] = mapped_column(Float)
    node_id: Mapped[str | None] = mapped_column(String(64))  # the Ray node it ran on
