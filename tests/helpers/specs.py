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
