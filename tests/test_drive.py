"""The drive use case: what a sweep's Ray job runs, started as a module of the use-case
layer (not the CLI), with nothing but the sweep's id on its command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_sweeps.cluster.jobs import DRIVER_MODULE, entrypoint

REPO = Path(__file__).resolve().parent.parent


def test_the_ray_jobs_entry_point_is_the_drive_use_case_with_the_sweeps_id():
    local = entrypoint("run", "sw-1", shared=True)
    assert local.split()[1:] == ["-m", DRIVER_MODULE, "run", "sw-1"]
    assert local.split()[0] == sys.executable  # this interpreter: its Python has the package
    assert entrypoint("resume", "sw-1", shared=False) == f"python -m {DRIVER_MODULE} resume sw-1"
    assert entrypoint("run", "a b; rm -rf /", shared=False).endswith("run 'a b; rm -rf /'")  # one argument


@pytest.mark.integration
def test_driving_an_unknown_sweep_names_it_and_exits_with_its_errors_code(tmp_path):
    env = {**os.environ, "CIFAR_SWEEPS_RESULTS_DIR": str(tmp_path), "HOME": str(tmp_path)}
    p = subprocess.run(
        [sys.executable, "-m", DRIVER_MODULE, "run", "sw-none"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert p.returncode == 2, p.stderr  # NotFound's exit code
    assert "sw-none" in p.stderr and "Traceback" not in p.stderr
    bad = subprocess.run(
        [sys.executable, "-m", DRIVER_MODULE, "walk", "sw-none"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "invalid choice: 'walk'" in bad.stderr
