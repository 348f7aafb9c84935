"""Specs and headers the API tests share."""

from __future__ import annotations

GOOD = {
    "name": "t",
    "num_samples": 2,
    "fixed": {"model": "mlp", "epochs": 2},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


AUTH = {"Authorization": "Bearer s3cret-token"}


# Four trials one at a time (a running sweep's limits change under it).
ONE_AT_A_TIME = {
    "name": "t",
    "num_samples": 4,
    "max_concurrent_trials": 1,
    "fixed": {"model": "mlp", "epochs": 2},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


# A learning rate searched on a log scale: the one searched parameter most tests need.
LR_PARAM = {"type": "loguniform", "low": 0.001, "high": 0.1}
LR_PARAMS = {"lr": LR_PARAM}


def warm_spec(**over) -> dict:
    """A small hyperopt sweep of lr and batch size (the warm-start tests' spec), edited by `over`."""
    spec = {
        "name": "warm",
        "num_samples": 4,
        "search": {"algorithm": "hyperopt", "seed": 0, "n_initial_points": 3},
        "scheduler": {"type": "fifo"},
        "fixed": {"model": "mlp", "epochs": 2},
        "params": {"lr": LR_PARAM, "batch_size": {"type": "choice", "values": [32, 64]}},
    }
    spec.update(over)
    return spec
