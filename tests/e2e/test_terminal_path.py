"""The terminal path of docs/terminal.md, in its order, on a HOME of its own: a local
`cifar-sweeps run`, then `ray start --head`, `ray job submit ... -- cifar-sweeps run ...`
and `cifar-sweeps leaderboard`. The local run must leave no Ray token behind that would
turn authentication on for the later head (and make a plain `ray job submit` fail)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_sweeps.cluster.connection import start_head, stop_head
from tests.helpers.paths import REPO
from tests.helpers.ray_head import VENV_BIN, free_port, shared_throughputs

pytestmark = pytest.mark.slow
SMALL = [
    "--data",
    "synthetic:300",
    "--set",
    "num_samples=2",
    "--set",
    "fixed.epochs=1",
    "--set",
    "fixed.batch_size=64",
    "--set",
    "data.train_subset=200",
]


def _env(home: Path, results: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "CIFAR_SWEEPS_"))}
    # A user's shell: their own HOME, no Ray auth mode chosen, the venv on PATH, and the
    # results folder exported for the local run, the head (its job drivers) and the CLI.
    env.update(
        HOME=str(home),
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        CIFAR_SWEEPS_RESULTS_DIR=str(results),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        CIFAR_SWEEPS_THROUGHPUT_FILE=str(shared_throughputs()),  # a shape probed once a test run
    )
    return env


def _run(cmd: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def test_the_readme_terminal_commands_in_order(tmp_path):
    home, results = tmp_path / "home", tmp_path / "results"
    home.mkdir()
    env = _env(home, results)
    _run([str(VENV_BIN / "cifar-sweeps"), "run", "quickstart", *SMALL, "--name", "local"], env)
    assert not (home / ".ray" / "auth_token").exists()  # nothing left to change the next head

    dashboard = free_port()
    head = start_head(dashboard, free_port(), num_cpus=2, env=env)  # `ray start --head --dashboard-host 127.0.0.1`
    try:
        submit = _run(
            [
                str(VENV_BIN / "ray"),
                "job",
                "submit",
                "--address",
                f"http://127.0.0.1:{dashboard}",
                "--working-dir",
                ".",
                "--",
                "cifar-sweeps",
                "run",
                "search_spaces/quickstart.json",
                *SMALL,
                "--name",
                "via-job",
            ],
            env,
        )
        assert "succeeded" in submit.stdout.lower(), submit.stdout[-3000:]
    finally:
        stop_head(head)
    board = _run([sys.executable, "-m", "cifar_sweeps", "leaderboard", "--json"], env)
    import json

    items = json.loads(board.stdout)["items"]
    assert all(i["status"] == "terminated" for i in items)
    # two sweeps of two trials each, each ending in its refit (the quickstart preset refits)
    assert len([i for i in items if not i["refit_of"]]) == 4 and len([i for i in items if i["refit_of"]]) == 2
