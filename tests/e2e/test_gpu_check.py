"""The GPU check (benchmarks/gpu_sweep.py) end to end on the CPU, tiny, under a GPU machine's
constraints: no console script on PATH (only `python -m cifar_sweeps`), the project taken
from its checkout by PYTHONPATH. On the day a GPU comes, the only unknown is the GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO

pytestmark = pytest.mark.slow
ROOT = REPO


def test_the_gpu_check_runs_end_to_end_as_a_cpu_smoke_without_a_console_script(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "CIFAR_SWEEPS_"))}
    env.update(
        PATH="/usr/bin:/bin",  # no venv bin: `cifar-sweeps` and `ray` are not there
        PYTHONPATH=str(ROOT),
        RAY_AUTH_MODE="disabled",
        CIFAR_SWEEPS_RESULTS_DIR=str(tmp_path / "results"),
    )
    entry = subprocess.run([sys.executable, "-m", "cifar_sweeps", "--help"], env=env, capture_output=True, text=True)
    assert entry.returncode == 0 and "usage: cifar-sweeps" in entry.stdout
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_sweep.py"),
            "--cpu-smoke",
            "--results-dir",
            str(tmp_path / "gpu"),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
    assert "fwd+bwd" in out and "state save/restore" in out and "FAILED" not in out
    for row in ("tests", "sweep best test_acc", "GPU while trials shared it", "ResNet-50 img/s, batch 128"):
        assert row in out, row
    assert (tmp_path / "logs" / "tests.txt").exists() and (tmp_path / "logs" / "sweep.json").exists()
