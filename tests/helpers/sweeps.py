"""The scaffolding of the end-to-end sweep tests: a spec on disk, the public command run
as a user runs it (in the foreground, or as a driver in the background to be killed), the
store it writes, and the trial results Tune keeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from cifar_sweeps.store.queries import Store
from tests.helpers.ray_head import VENV_BIN, RayHead, cli_env

REPO = Path(__file__).resolve().parents[2]


def sweep_env(head: RayHead, results: Path) -> dict[str, str]:
    return cli_env(head, results, CIFAR_SWEEPS_TEST_HOOKS="1")  # fail_at_epoch / fault are used here


def write_spec(tmp: Path, **over) -> Path:
    spec = {
        "name": "e2e",
        "num_samples": 6,
        "max_concurrent_trials": 2,
        "search": {"algorithm": "hyperopt", "seed": 1, "n_initial_points": 3},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "fixed": {"model": "mlp", "epochs": 4, "batch_size": 64},
        "params": {"lr": {"type": "loguniform", "low": 0.0001, "high": 0.1}},
    }
    spec.update(over)
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def run_cli(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "cifar-sweeps"), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def open_store(results: Path) -> Store:
    return Store(f"sqlite:///{results / 'cifar_sweeps.db'}")


def trial_results(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line]


def result_epochs(trial_dir: Path) -> list[int]:
    return [r["epoch"] for r in trial_results(trial_dir)]


def spawn_run(spec: Path, env: dict) -> subprocess.Popen:
    """A `cifar-sweeps run` driver in the background, on 3,000 synthetic images."""
    return subprocess.Popen(
        [str(VENV_BIN / "cifar-sweeps"), "run", str(spec), "--data", "synthetic:3000"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(store: Store, pick, timeout: float = 300, poll: float = 0.3) -> tuple[str, list]:
    """Poll the store (every `poll` s) until `pick(trials)` of its one sweep is non-empty:
    (sweep id, picked)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows, _ = store.list_sweeps()
        if rows:
            picked = pick(store.trials(rows[0].id))
            if picked:
                return rows[0].id, picked
        time.sleep(poll)
    raise AssertionError("the sweep did not reach the awaited state in time")


def kill_as_a_trial_starts(driver: subprocess.Popen, store: Store, finished: int) -> tuple[str, str]:
    """SIGKILL the driver the moment a trial's row appears after `finished` trials ended:
    inside Tune's experiment snapshot period (0.5 s). (sweep id, the new trial's id)."""
    sweep_id, (hit,) = wait_for(
        store,
        lambda ts: (
            [ts[-1].id] if sum(t.status == "terminated" for t in ts) >= finished and ts[-1].status == "running" else []
        ),
        poll=0.01,
    )
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(30)
    return sweep_id, hit
