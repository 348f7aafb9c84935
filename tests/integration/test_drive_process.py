"""The drive use case as the Ray job runs it (python -m cifar_sweeps.usecases.drive): an
unknown sweep is named, with its error's exit code."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cifar_sweeps.cluster.jobs import DRIVER_MODULE
from tests.helpers.paths import REPO


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
