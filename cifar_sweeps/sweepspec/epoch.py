"""What each epoch of a trial reports, once: the trainer's result (training/train.py), the
metrics Tune passes on, the store's epoch row (store/queries.py) and the API's epoch item
(service/schemas.py) all extend or read this model."""

from __future__ import annotations

from pydantic import BaseModel


class EpochRecord(BaseModel):
    epoch: int  # 1-based
    train_loss: float
    train_acc: float
    # None (NaN from the trainer): no validation images, as in a refit (tuning/refit.py)
    val_loss: float | None
    val_acc: float | None  # this epoch's (metrics.py: `val_acc`)
    lr: float  # the last param group's, at the epoch's start
    seconds: float  # wall time of the epoch, training and evaluation
    images_per_s: float  # training images per second of the training phase


# The measured values of an epoch (all but its number): the store's columns of an epoch row.
MEASURED: tuple[str, ...] = tuple(f for f in EpochRecord.model_fields if f != "epoch")
