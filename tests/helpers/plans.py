"""A plan's spec, and a store that has measured one trial shape (what a plan reads)."""

from __future__ import annotations

from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store

BASE = {
    "name": "p",
    "fixed": {"model": "mlp", "epochs": 9, "batch_size": 64},
    "num_samples": 4,
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


def measured_store(tmp_path):
    """A store with a finished sweep of mlp at batch 64 on 1 CPU: 2 s per epoch on 1,250 images."""
    settings = Settings(results_dir=tmp_path, api_token="s3cret-token", cache_ttl_s=0)  # each GET reads anew
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep(BASE | {"resources_per_trial": {"cpu": 1}}, "synthetic:1250", "v")
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp", "batch_size": 64, "lr": 0.01}, 3)
    for e in (1, 2, 3):
        store.trial_epoch(
            tid,
            {
                "epoch": e,
                "train_loss": 1,
                "train_acc": 0.5,
                "val_loss": 1,
                "val_acc": 0.5,
                "lr": 0.01,
                "seconds": 2.0,
                "images_per_s": 500,
            },
        )
    return settings, store
