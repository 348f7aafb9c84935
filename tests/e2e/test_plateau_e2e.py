"""Plateau stopping on a real Ray head: trials whose validation accuracy does not move (a
learning rate of 1e-7) end after the plateau's grace period, recorded as early-stopped."""

from __future__ import annotations

import pytest

from tests.helpers.sweeps import open_store, run_cli, sweep_env, write_spec

pytestmark = pytest.mark.slow


def test_flat_trials_stop_on_their_plateau(ray_head, tmp_path):
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=2,
        scheduler={"type": "fifo"},  # no scheduler would stop them: the plateau alone does
        fixed={"model": "mlp", "epochs": 12, "batch_size": 64},
        params={"lr": {"type": "choice", "values": [1e-7, 2e-7]}},
        stop={"plateau": {"metric": "val_acc", "std": 0.01, "num_results": 3, "grace_period": 3}},
    )
    p = run_cli(["run", str(spec), "--data", "synthetic:600"], sweep_env(ray_head, results))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = open_store(results)
    (sweep,), _ = store.list_sweeps()
    trials = store.trials(sweep.id)
    assert len(trials) == 2
    assert all(t.status == "early_stopped" and t.epochs == 3 for t in trials), [(t.status, t.epochs) for t in trials]
