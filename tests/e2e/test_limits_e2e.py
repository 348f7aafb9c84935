"""A running sweep's limits changed through the served API and applied by its driver: on a
real Ray head, one trial at a time becomes two at once within seconds, and a raised trial
count adds trials to the same search (tuning/live.py)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.helpers.service import Service

pytestmark = pytest.mark.slow

SPEC = {
    "name": "live",
    "num_samples": 3,
    "max_concurrent_trials": 1,
    "scheduler": {"type": "fifo"},
    "search": {"algorithm": "hyperopt", "seed": 0, "n_initial_points": 2},
    "fixed": {"model": "simple_cnn", "epochs": 6, "batch_size": 32},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.05}},
}


def _running(svc: Service, sweep_id: str) -> int:
    return sum(t.status == "running" for t in svc.store.trials(sweep_id))


def _most_running(svc: Service, sweep_id: str, seconds: float) -> int:
    most, deadline = 0, time.time() + seconds
    while time.time() < deadline and svc.status(sweep_id) == "running":
        most = max(most, _running(svc, sweep_id))
        time.sleep(0.1)
    return most


def test_a_running_sweeps_concurrency_and_trial_count_change_and_are_seen(ray_head, tmp_path):
    svc = Service(ray_head, tmp_path / "results").start()
    try:
        sweep_id = httpx.post(f"{svc.base}/sweeps", json=SPEC, timeout=60).json()["id"]
        deadline = time.time() + 180
        while _running(svc, sweep_id) == 0 and time.time() < deadline:
            time.sleep(0.2)
        assert _most_running(svc, sweep_id, 3) == 1  # as submitted: one at a time

        r = httpx.patch(
            f"{svc.base}/sweeps/{sweep_id}", json={"max_concurrent_trials": 2, "num_samples": 5}, timeout=30
        )
        assert r.status_code == 200, r.text
        assert _most_running(svc, sweep_id, 60) == 2  # the driver read the new limit

        assert svc.wait(sweep_id, {"succeeded", "failed", "stopped", "interrupted"}, 400) == "succeeded"
        trials = svc.store.trials(sweep_id)
        assert len(trials) == 5 and all(t.status == "terminated" for t in trials)
        r = httpx.patch(f"{svc.base}/sweeps/{sweep_id}", json={"num_samples": 9}, timeout=30)
        assert r.status_code == 409  # ended: nothing to change
    finally:
        svc.stop()
