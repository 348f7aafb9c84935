"""Training configs for tests: a small MLP run, edited by keyword."""

from __future__ import annotations

from cifar_sweeps.sweepspec.config import TrainConfig


def train_config(**kw) -> TrainConfig:
    base = dict(model="mlp", epochs=2, batch_size=32, lr=0.01, seed=0, threads=1)
    return TrainConfig(**{**base, **kw})
