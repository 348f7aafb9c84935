"""Sweeps written to the store directly, for the importance tests: a metric that depends on
lr alone (with noise), so lr must explain it."""

from __future__ import annotations

import math
import random

from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.schema import parse_spec

SPEC = {
    "name": "imp",
    "fixed": {"model": "mlp", "epochs": 1},
    "params": {
        "lr": {"type": "loguniform", "low": 0.0001, "high": 0.1},
        "batch_size": {"type": "choice", "values": [32, 64, 128]},
        "momentum": {"type": "uniform", "low": 0.5, "high": 0.95},
    },
}


def lr_accuracy(lr: float, rng: random.Random) -> float:
    """Best near lr = 0.01 on a log scale, worse either side; plus noise."""
    return 0.8 - 0.08 * (math.log10(lr) + 2) ** 2 + rng.gauss(0, 0.01)


def stored_sweep(tmp_path, n: int):
    settings = Settings(results_dir=tmp_path)
    store = get_store(settings.resolved_store_url())
    spec = parse_spec(SPEC)
    sweep = store.create_sweep(spec.model_dump(mode="json"), "synthetic:10", "test")
    rng = random.Random(0)
    for i in range(n):
        cfg = {
            "model": "mlp",
            "epochs": 1,
            "lr": 10 ** rng.uniform(-4, -1),
            "batch_size": rng.choice([32, 64, 128]),
            "momentum": rng.uniform(0.5, 0.95),
        }
        add_trial(store, sweep.id, f"t{i}", cfg, lr_accuracy(cfg["lr"], rng))
    return settings, store, sweep


def add_trial(store, sweep_id: str, name: str, cfg: dict, acc: float) -> str:
    tid = lifecycle.trial_started(store, sweep_id, name, cfg, 1)
    store.trial_epoch(
        tid,
        {
            "epoch": 1,
            "train_loss": 1.0,
            "train_acc": acc,
            "val_loss": 1 - acc,
            "val_acc": acc,
            "lr": cfg["lr"],
            "seconds": 1.0,
            "images_per_s": 1.0,
        },
    )
    lifecycle.trial_ended(store, tid, "terminated")
    return tid
