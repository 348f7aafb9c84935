"""Budgeted sweeps on a real Ray head: a killed and resumed sweep spends its budget once; a
sweep that runs into its time budget leaves no trial running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.helpers.ray_head import VENV_BIN
from tests.helpers.specs import LR_PARAMS as LR

# The same budget with two objectives: Optuna's multi-objective TPE over two models.
TWO_OBJECTIVES = {
    "objectives": [{"metric": "best_val_acc", "mode": "max"}, {"metric": "params", "mode": "min"}],
    "search": {"algorithm": "optuna", "seed": 1, "n_initial_points": 2},
    "params": {**LR, "model": {"type": "choice", "values": ["mlp", "default_conv"]}},
}


@pytest.mark.slow
# Two objectives only: the epoch count is the same code with one, whose searcher's resume
# test_sweep_e2e covers.
@pytest.mark.parametrize("over", [TWO_OBJECTIVES], ids=["two-objectives"])
def test_a_budgeted_sweep_killed_and_resumed_spends_its_budget_once(ray_head, tmp_path, over):
    from tests.helpers.sweeps import REPO, open_store, run_cli, sweep_env, write_spec

    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=None,
        budget={"epochs": 12},
        max_concurrent_trials=2,
        scheduler={"type": "fifo"},
        fixed={"model": "mlp", "epochs": 4, "batch_size": 32},
        params=LR,
    )
    if over:  # the model is searched: out of `fixed`
        raw = json.loads(spec.read_text())
        raw.update(over, fixed={"epochs": 4, "batch_size": 32})
        spec.write_text(json.dumps(raw))
    raw = json.loads(spec.read_text())
    del raw["num_samples"]  # left open: the budget decides
    spec.write_text(json.dumps(raw))
    env = sweep_env(ray_head, results)
    driver = subprocess.Popen(
        [str(VENV_BIN / "cifar-sweeps"), "run", str(spec), "--data", "synthetic:3000"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = open_store(results)
    deadline, sweep_id = time.time() + 300, None
    while time.time() < deadline:
        rows, _ = store.list_sweeps()
        if rows and len(store.epoch_keys(rows[0].id)) >= 5:
            sweep_id = rows[0].id
            break
        time.sleep(0.3)
    assert sweep_id, "no 5 epochs before the deadline"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(30)
    before = len(store.epoch_keys(sweep_id))

    p = run_cli(["resume", sweep_id], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sweep = store.get_sweep(sweep_id)
    spent = len(store.epoch_keys(sweep_id))
    assert sweep.status == "succeeded" and sweep.reason == "budget_spent", (sweep.status, sweep.reason)
    assert 12 <= spent <= 12 + 1, (before, spent)  # + (concurrent trials - 1)
    trials = store.trials(sweep_id)
    assert len(trials) >= 3  # every trial's results kept
    # A trial Tune launched in the moment the budget ran out is stopped before its first
    # epoch: at most (concurrent trials - 1) of them, the same slack the epochs have.
    assert sum(t.epochs == 0 for t in trials) <= 1, [t.epochs for t in trials]
    assert sum(t.epochs for t in trials) == spent
    if over:  # the multi-objective searcher's history came back: no configuration twice
        assert len({(t.config["model"], t.config["lr"]) for t in trials}) == len(trials)
        # What the front ranks; a trial stopped before its first epoch measured nothing.
        assert all(t.params and t.latency_ms for t in trials if t.epochs), [(t.epochs, t.params) for t in trials]


@pytest.mark.slow
def test_a_sweep_that_runs_into_its_time_budget_leaves_no_trial_running(ray_head, tmp_path):
    """time_budget_s ends a sweep (succeeded) with trials mid-run: Tune stops them with no
    trial callback, so they stayed `running` in the store for ever. They end with the sweep,
    and their best weights are tested."""
    from tests.helpers.sweeps import open_store, run_cli, sweep_env, write_spec

    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=4,
        max_concurrent_trials=2,
        # 50 s: the test needs cut trials that finished an epoch first, and on a loaded 2-core
        # machine a trial's start (a Ray actor, torch, the data) took 10-15 s, once over 30.
        time_budget_s=50,
        scheduler={"type": "fifo"},
        fixed={"model": "mlp", "epochs": 500, "batch_size": 32},
        params=LR,
    )
    p = run_cli(["run", str(spec), "--data", "synthetic:3000"], sweep_env(ray_head, results))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = open_store(results)
    (sweep,) = store.list_sweeps()[0]
    assert sweep.status == "succeeded", (sweep.status, sweep.error)
    trials = store.trials(sweep.id)
    assert trials and all(t.status != "running" for t in trials), [(t.id, t.status) for t in trials]
    cut = [t for t in trials if t.epochs < 500]
    assert cut and all(t.status == "early_stopped" and "time_budget_s" in (t.error or "") for t in cut)
    # FIFO stops a trial only at its last epoch, where it would test its best weights; the
    # budget cut them before, so the driver tested them after the sweep.
    scored = [t for t in cut if t.val_acc is not None]
    assert scored and all(t.test_acc is not None and 0 <= t.test_acc <= 1 for t in scored), [
        (t.id, t.val_acc, t.test_acc) for t in scored
    ]
    assert p.stdout.count("stopped before it tested its best weights") == len(scored), p.stdout[-3000:]
