"""End-to-end sweeps on a real Ray head (`ray start --head`), real HyperOpt, real SQLite."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cifar_sweeps.store import lifecycle
from cifar_sweeps.training.train import load_model_file
from tests.helpers.ray_head import VENV_BIN, RayHead
from tests.helpers.sweeps import (
    REPO,
    kill_as_a_trial_starts,
    open_store,
    result_epochs,
    run_cli,
    spawn_run,
    sweep_env,
    trial_results,
    wait_for,
    write_spec,
)

pytestmark = pytest.mark.slow


def test_hyperopt_asha_sweep(ray_head, tmp_path):
    results = tmp_path / "results"
    p = run_cli(["run", str(write_spec(tmp_path)), "--data", "synthetic:1000"], sweep_env(ray_head, results))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "rank" in p.stdout and "val_acc" in p.stdout  # the final leaderboard is printed
    store = open_store(results)
    (sweep,), _ = store.list_sweeps()
    assert sweep.status == "succeeded"
    trials = store.trials(sweep.id)
    assert len(trials) == 6
    for t in trials:
        assert isinstance(t.config["lr"], float) and isinstance(t.config["epochs"], int)
        assert isinstance(t.config["batch_size"], int) and t.config["model"] == "mlp"
        assert t.status in ("terminated", "early_stopped")
        assert t.test_acc is not None and 0 <= t.test_acc <= 1
        assert t.checkpoint_path and Path(t.checkpoint_path).is_file()
        model = load_model_file(t.checkpoint_path)
        assert sum(p.numel() for p in model.parameters()) > 0
        assert len(store.epochs(t.id)) == t.epochs
    assert any(t.epochs < 4 and t.status == "early_stopped" for t in trials)  # ASHA stopped one
    board, total = store.leaderboard(sweep_id=sweep.id)
    assert total == 6
    accs = [t.val_acc for t in board]
    assert accs == sorted(accs, reverse=True)


def test_retry_continues_from_checkpoint(ray_head, tmp_path):
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=1,
        scheduler={"type": "fifo"},
        max_failures=2,
        fixed={"model": "mlp", "epochs": 4, "batch_size": 64, "fail_at_epoch": 2},
        params={"lr": {"type": "choice", "values": [0.01]}},
    )
    p = run_cli(["run", str(spec), "--data", "synthetic:500"], sweep_env(ray_head, results))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = open_store(results)
    (sweep,), _ = store.list_sweeps()
    (trial,) = store.trials(sweep.id)
    trial_dir = Path(sweep.experiment_path) / f"trial_{trial.tune_trial_id}"
    assert (trial_dir / "injected_fault_done").read_text() == "2"  # the fault did happen
    # After the failure at epoch 2 the retry restored epoch 2's checkpoint and went on at 3.
    assert result_epochs(trial_dir) == [1, 2, 3, 4]
    assert trial.status == "terminated" and trial.epochs == 4


@pytest.mark.parametrize("algorithm", ["hyperopt", "optuna"])
def test_sigkill_driver_then_resume(ray_head, tmp_path, algorithm):
    """Each searcher: a short sweep, its driver SIGKILLed mid-trial, resumed: the searcher's
    state comes back (the sweep ends with exactly num_samples trials), configs keep their
    types, no finished trial trains again."""
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=4,
        max_concurrent_trials=1,
        scheduler={"type": "fifo"},
        search={"algorithm": algorithm, "seed": 1, "n_initial_points": 2},
        fixed={"model": "simple_cnn", "epochs": 3},
        params={
            "lr": {"type": "loguniform", "low": 0.001, "high": 0.05},
            "batch_size": {"type": "choice", "values": [32, 64]},
        },
    )
    env = sweep_env(ray_head, results)
    driver = spawn_run(spec, env)
    store = open_store(results)
    sweep_id, trials = wait_for(
        store,
        lambda ts: (
            ts
            if any(t.status == "terminated" for t in ts) and any(t.status == "running" and t.epochs >= 1 for t in ts)
            else []
        ),
    )
    finished_before = {t.id: (t.finished_at, t.epochs) for t in trials if t.status == "terminated"}
    time.sleep(1.5)  # past Tune's experiment snapshot period (0.5 s): the kill hits a running trial
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(30)

    kept = {t.id for t in store.trials(sweep_id) if t.val_acc is not None}

    p = run_cli(["resume", sweep_id], env)  # what the user types after the kill, nothing in between
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sweep = store.get_sweep(sweep_id)
    assert sweep.status == "succeeded"
    trials = store.trials(sweep_id)
    assert len(trials) == 4
    assert kept <= {t.id for t in trials}  # nothing recorded before the kill was lost
    assert len({(t.config["lr"], t.config["batch_size"]) for t in trials}) == 4  # the searcher did not restart
    for t in trials:
        assert t.status == "terminated" and t.epochs == 3
        assert isinstance(t.config["lr"], float) and t.config["batch_size"] in (32, 64)
        assert type(t.config["batch_size"]) is int and type(t.config["epochs"]) is int
        epochs = result_epochs(Path(sweep.experiment_path) / f"trial_{t.tune_trial_id}")
        assert epochs.count(1) == 1, f"{t.id} trained from scratch again: {epochs}"
        if t.id in finished_before:  # finished trials were not run again
            at, trained = finished_before[t.id]
            assert t.finished_at == at and t.epochs == trained and len(epochs) == trained, (t.id, trained, epochs)


def test_a_trial_started_just_before_a_kill_continues_or_says_why_not(ray_head, tmp_path):
    """The driver SIGKILLed as a trial starts. After `resume` that trial either continued
    (Tune's last snapshot held it) or is errored and says why (it did not: the search,
    restored from the same snapshot, ran a new trial in its place). Either way the sweep
    ends with its num_samples trials done, no configuration done twice."""
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=3,
        max_concurrent_trials=1,
        scheduler={"type": "fifo"},
        search={"algorithm": "hyperopt", "seed": 1, "n_initial_points": 2},
        fixed={"model": "mlp", "epochs": 2, "batch_size": 64},
    )
    env = sweep_env(ray_head, results)
    store = open_store(results)
    sweep_id, hit = kill_as_a_trial_starts(spawn_run(spec, env), store, finished=1)

    p = run_cli(["resume", sweep_id], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert store.get_sweep(sweep_id).status == "succeeded"
    trials = store.trials(sweep_id)
    done = [t for t in trials if t.status == "terminated"]
    assert len(done) == 3 and len({t.config["lr"] for t in done}) == 3  # (a lost one's may run again)
    lost = [t for t in trials if t.status != "terminated"]
    print(f"the trial the kill hit was {'lost' if lost else 'continued'}")
    assert [t.id for t in lost] in ([], [hit])
    for t in lost:
        assert t.status == "errored" and t.error == lifecycle.NOT_RESTORED
        assert f"trial {hit}: {lifecycle.NOT_RESTORED}" in p.stdout


def test_ray_job_submit(ray_head, tmp_path):
    results = tmp_path / "results"
    env = sweep_env(ray_head, results)
    spec = write_spec(tmp_path, num_samples=2, fixed={"model": "mlp", "epochs": 2, "batch_size": 64})
    p = subprocess.run(
        [
            str(VENV_BIN / "ray"),
            "job",
            "submit",
            "--address",
            ray_head.dashboard_url,
            "--working-dir",
            str(REPO),
            "--",
            "cifar-sweeps",
            "run",
            str(spec),
            "--data",
            "synthetic:500",
            "--results-dir",
            str(results),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray_head.dashboard_url)
    jobs = [j for j in client.list_jobs() if j.entrypoint and "cifar-sweeps run" in j.entrypoint]
    assert jobs and jobs[-1].status == JobStatus.SUCCEEDED
    store = open_store(results)
    (sweep,), _ = store.list_sweeps()
    assert sweep.status == "succeeded" and len(store.trials(sweep.id)) == 2


def test_wandb_offline_logs_every_epoch(ray_head, tmp_path):
    """Every trial's offline W&B run, in the sweep's storage, holds all its epochs (the
    runs that end last included: see tracking.py)."""
    from tests.helpers.wandb_reader import history

    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=1,
        max_concurrent_trials=2,
        wandb=True,
        scheduler={"type": "fifo"},
        search={"algorithm": "grid"},
        fixed={"model": "mlp", "epochs": 3, "batch_size": 64},
        params={"lr": {"type": "choice", "values": [0.01, 0.03]}},
    )
    env = sweep_env(ray_head, results)
    env.pop("WANDB_API_KEY", None)
    env.update(WANDB_SILENT="true", WANDB_MODE="offline")
    p = run_cli(["run", str(spec), "--data", "synthetic:400"], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = open_store(results)
    (sweep,), _ = store.list_sweeps()
    trials = store.trials(sweep.id)
    assert len(trials) == 2
    for t in trials:
        runs = list((Path(sweep.experiment_path) / f"trial_{t.tune_trial_id}" / "wandb").glob("offline-run-*/*.wandb"))
        assert len(runs) == 1, f"no offline W&B run for {t.id}"
        steps = [r for r in history(runs[0]) if "val_acc" in r]
        assert [r["epoch"] for r in steps] == [1, 2, 3]
        assert {"train_loss", "train_acc", "val_loss", "lr"} <= set(steps[-1])


def test_trial_faults_are_recorded_and_the_sweep_goes_on(ray_head, tmp_path):
    """A trial that raises, one whose loss goes NaN and one out of GPU memory (torch's OOM
    error, injected) are each recorded as errored with their error text; the rest finish."""
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=1,
        max_concurrent_trials=2,
        max_failures=0,
        scheduler={"type": "fifo"},
        search={"algorithm": "grid"},
        fixed={"model": "mlp", "epochs": 2, "batch_size": 64},
        params={
            "case": {
                "type": "choice",
                "values": [
                    {"lr": 0.01, "fail_at_epoch": 1, "fault": "raise"},
                    {"lr": 0.01, "fail_at_epoch": 1, "fault": "oom"},
                    {"lr": 1.0e6},
                    {"lr": 0.01},
                ],
            }
        },
    )
    p = run_cli(["run", str(spec), "--data", "synthetic:400"], sweep_env(ray_head, results))
    store = open_store(results)
    (sweep,), _ = store.list_sweeps()
    assert sweep.status == "succeeded", p.stdout[-2000:] + p.stderr[-2000:]
    by_case = {}
    for t in store.trials(sweep.id):
        key = t.config.get("fault") or ("nan" if t.config["lr"] > 1 else "ok")
        by_case[key] = t
    assert set(by_case) == {"raise", "oom", "nan", "ok"}
    assert by_case["ok"].status == "terminated" and by_case["ok"].epochs == 2
    assert by_case["raise"].status == "errored" and "InjectedFault" in by_case["raise"].error
    assert by_case["oom"].status == "errored" and "OutOfMemoryError" in by_case["oom"].error
    assert by_case["nan"].status == "errored" and "NonFiniteLossError" in by_case["nan"].error
    assert by_case["raise"].epochs == 1  # what it reported before failing is kept


def test_bohb_sigkill_driver_then_resume(ray_head, tmp_path):
    """BOHB: a sweep whose driver is SIGKILLed after HyperBand judged its first rung, resumed.
    Before resuming, a trial that was mid-training is marked early_stopped in the store, as
    when the scheduler stops it after Tune's last snapshot and the kill lands in between:
    the resumed run must not train it again (Tune's snapshot still has it unfinished). The
    sweep ends with num_samples trials of typed configs (besides one the kill may have
    caught as it started, marked not restored); no ended trial trains again and
    no trial trains from scratch."""
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=5,
        max_concurrent_trials=1,
        scheduler={"type": "hyperband"},
        search={"algorithm": "bohb", "seed": 1, "n_initial_points": 2},
        fixed={"model": "simple_cnn", "epochs": 3},
        params={
            "lr": {"type": "loguniform", "low": 0.001, "high": 0.05},
            "batch_size": {"type": "choice", "values": [32, 64]},
        },
    )
    env = sweep_env(ray_head, results)
    driver = spawn_run(spec, env)
    store = open_store(results)
    sweep_id, running = wait_for(
        store,
        lambda ts: (
            [t for t in ts if t.status == "running" and t.epochs >= 2]
            if any(t.status == "early_stopped" for t in ts)
            else []
        ),
    )
    time.sleep(1.0)  # past Tune's experiment snapshot period (0.5 s)
    os.kill(driver.pid, signal.SIGKILL)
    killed_at = time.time()
    driver.wait(30)
    from cifar_sweeps.store.states import TRIAL_COMPLETED, TrialStatus

    lifecycle.trial_ended(store, running[0].id, TrialStatus.EARLY_STOPPED)  # the stop Tune's snapshot missed
    sweep = store.get_sweep(sweep_id)
    ended = {t.id: (t.finished_at, t.epochs) for t in store.trials(sweep_id) if t.status in TRIAL_COMPLETED}
    assert running[0].id in ended and len(ended) >= 3

    p = run_cli(["resume", sweep_id], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert store.get_sweep(sweep_id).status == "succeeded"
    rows = store.trials(sweep_id)
    # A trial started in the second between the last snapshot and the kill is lost to Tune:
    # its row says so and a new trial runs in its place (at most one: one runs at a time).
    lost = [t for t in rows if t.status == "errored"]
    assert len(lost) <= 1 and all(t.error == lifecycle.NOT_RESTORED for t in lost)
    assert all(f"trial {t.id}: {lifecycle.NOT_RESTORED}" in p.stdout for t in lost)
    trials = [t for t in rows if t not in lost]
    assert len(trials) == 5 and len({(t.config["lr"], t.config["batch_size"]) for t in trials}) == 5
    for t in trials:
        assert t.status in ("terminated", "early_stopped") and 1 <= t.epochs <= 3
        assert type(t.config["lr"]) is float and type(t.config["batch_size"]) is int
        assert t.config["batch_size"] in (32, 64)
        results = trial_results(Path(sweep.experiment_path) / f"trial_{t.tune_trial_id}")
        epochs = [r["epoch"] for r in results]
        assert epochs.count(1) == 1, f"{t.id} trained from scratch again: {epochs}"
        if t.id in ended:  # ended before the resume: not trained again, its end kept
            # (Tune copies result.json to the experiment folder with a lag, so the epochs
            # are judged by when the trial reported them, not by the file at the kill.)
            assert (t.finished_at, t.epochs) == ended[t.id] and epochs == list(range(1, t.epochs + 1)), t.id
            assert all(r["timestamp"] <= killed_at for r in results), f"{t.id} trained after the kill: {results}"
    assert any(t.status == "terminated" and t.epochs == 3 for t in trials)  # a trial HyperBand promoted to max_t


def test_a_gpu_quarter_preset_packs_four_trials_on_one_gpu(tmp_path):
    """A head with one GPU (Ray only counts it: this machine has none), a spec asking a
    quarter GPU per trial: four trials run at once, and each says in one line that CUDA is
    not there to use."""
    head = RayHead(tmp_path / "gpu-head", num_cpus=4, num_gpus=1).start()
    try:
        results = tmp_path / "results"
        spec = write_spec(
            tmp_path,
            num_samples=4,
            max_concurrent_trials=4,
            scheduler={"type": "fifo"},
            resources_per_trial={"cpu": 1, "gpu": 0.25},
            search={"algorithm": "random", "seed": 0},
            # Trials long enough that the fourth starts before the first ends on a loaded
            # machine (Tune starts one pending trial at a time).
            fixed={"model": "mlp", "epochs": 10, "batch_size": 32},
        )
        env = {**sweep_env(head, results), "RAY_DEDUP_LOGS": "0"}  # each trial's line, not "[repeated 3x]"
        p = run_cli(["run", str(spec), "--data", "synthetic:1200"], env)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        trials = open_store(results).trials(open_store(results).list_sweeps()[0][0].id)
        assert len(trials) == 4 and all(t.status == "terminated" for t in trials)
        first_end = min(t.finished_at for t in trials)
        assert all(t.started_at < first_end for t in trials)  # all four were running together
        out = p.stdout + p.stderr
        assert len(set(re.findall(r"trial (\w+): Ray gave it GPU \[0\], but CUDA is not available", out))) == 4, out[
            -3000:
        ]
    finally:
        head.stop()
