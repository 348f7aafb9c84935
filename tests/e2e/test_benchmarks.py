"""Every benchmark script runs end to end with a tiny setting (numbers are not checked:
tests never assert timings)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO
from tests.helpers.ray_head import free_port, shared_throughputs

pytestmark = pytest.mark.slow
ROOT = REPO

SMOKE = {
    "pipeline.py": ["--data", "synthetic:300", "--images", "128", "--repeats", "1", "--workers", "1"],
    "sweep_overhead.py": [
        "--data",
        "synthetic:300",
        "--trials",
        "2",
        "--epochs",
        "1",
        "--train-images",
        "100",
        "--eval-images",
        "50",
        "--repeats",
        "1",
        "--model",
        "mlp",
    ],
    "search_efficiency.py": [
        "--data",
        "synthetic:300",
        "--seeds",
        "0",
        "1",
        "--num-samples",
        "3",
        "--train-images",
        "100",
        "--eval-images",
        "50",
        "--min-epochs",
        "2",
        "--max-epochs",
        "4",
        "--model",
        "mlp",
        "--methods",
        "optuna",  # (bohb's path: test_sweep_e2e)
    ],
    "memory.py": ["--data", "synthetic:300", "--baseline-data", "synthetic:100", "--concurrency", "1", "2"],
    "api_load.py": ["--sweeps", "3", "--trials-per-sweep", "5", "--clients", "4", "--seconds", "1", "--posts", "2"],
    "report_table.py": ["--run", "mlp-report", "--data", "synthetic:300", "--epochs", "1"],
    "hostile_load.py": ["--trials", "60", "--csv-trials", "120", "--variants", "3", "--plans", "3", "--exports", "2"],
    "cpu_loop.py": ["--widths", "0.25", "--steps", "1", "--repeats", "1", "--batch-size", "16", "--no-compile"],
    "time_to_accuracy.py": [
        # The previous recipe's sweep is the preset's path on a spec file (test_spec loads it).
        *("--data", "synthetic:300", "--minutes", "0.3", "--skip-previous"),
        *("--baseline-minutes", "0.2", "--baseline-epochs", "1"),
    ],
    "ablation.py": ["--data", "synthetic:300", "--width", "0.25", "--epochs", "1"],
    "jpeg_quality.py": ["--data", "synthetic:300", "--width", "0.25", "--epochs", "1", "--qualities", "50"],
    "spec_fuzz.py": ["--examples", "20"],
    # on the table that tabulate.py writes first (below)
    "replay.py": ["--task", "mlp", "--seeds", "3", "--methods", "optuna TPE (5) + ASHA 1/3"],
    "tabulate.py": ["--task", "mlp", "--configs", "2", "--seeds", "1", "--workers", "1", "--data", "synthetic:300"],
    # The student's run alone: the two sweeps are the service's own path (test_refit_e2e, test_quickstart_e2e).
    # PBT's path through the SDK (its exploits: test_pbt_e2e)
    "pbt_vs_asha.py": ["--data", "synthetic:400", "--seeds", "0", "--minutes", "0.5", "--epochs", "2"]
    + ["--population", "2", "--methods", "pbt"],
    "search_gain.py": [
        "--task",
        "mlp",
        "--data",
        "synthetic:400",
        "--seeds",
        "0",
        "--minutes",
        "0.1",
        "--methods",
        "student",
    ],
}


@pytest.mark.parametrize("script", list(SMOKE))
def test_benchmark_runs(script, tmp_path):
    args = list(SMOKE[script])
    if script == "api_load.py":
        args += ["--port", str(free_port()), "--dashboard-port", str(free_port()), "--gcs-port", str(free_port())]
    if script == "report_table.py":
        args += ["--results-dir", str(tmp_path / "report")]
    if script in ("search_gain.py", "pbt_vs_asha.py"):
        args += ["--out", str(tmp_path / "runs.jsonl")]
    if script == "tabulate.py":
        args += ["--out", str(tmp_path / "tables")]
    if script == "replay.py":
        table = [*SMOKE["tabulate.py"], "--out", str(tmp_path / "tables")]
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "tabulate.py"), *table],
            check=True,
            timeout=300,
            cwd=ROOT,
            env=dict(os.environ, CIFAR_SWEEPS_RESULTS_DIR=str(tmp_path)),
            capture_output=True,
        )
        args += ["--tables", str(tmp_path / "tables")]
    env = dict(os.environ, CIFAR_SWEEPS_RESULTS_DIR=str(tmp_path), RAY_AUTH_MODE="disabled")
    env.update(CIFAR_SWEEPS_THROUGHPUT_FILE=str(shared_throughputs()))  # a shape probed once a run
    env.pop("RAY_ADDRESS", None)
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "---" in p.stdout  # the closing table was printed
    help_ = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert help_.returncode == 0 and "usage" in help_.stdout
