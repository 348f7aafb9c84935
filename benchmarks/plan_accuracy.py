"""Does the plan hold? Each spec is planned and then run with the user's own commands, in a
results folder of its own, and the plan's expected wall time is set beside the time the
user waited for `cifar-sweeps run` (from the command to its end: the runtime's start, the
driver, the data, the trials and the refit):

    python benchmarks/plan_accuracy.py                 # the specs below, once cold, once warm
    python benchmarks/plan_accuracy.py --specs mlp-fifo

"cold": a fresh folder (the plan's figure from a probe); "warm": the same folder again
(the plan's figure from the store's measured epochs and trial overheads). The ratio is
plan / actual: the target is 0.7 to 1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datetime import UTC

from benchmarks._common import ROOT, cpu_model, default_data, print_table, say_data  # noqa: E402

SUBSET = {"train_subset": 4000, "val_fraction": 0.04}
SPECS: dict[str, dict] = {
    "mlp-fifo": {
        "name": "plan-mlp",
        "num_samples": 6,
        "max_concurrent_trials": 2,
        "scheduler": {"type": "fifo"},
        "search": {"algorithm": "random", "seed": 0},
        "resources_per_trial": {"cpu": 1},
        "data": SUBSET,
        "fixed": {"model": "mlp", "epochs": 4, "batch_size": 64, "optimizer": "sgd"},
        "params": {"lr": {"type": "loguniform", "low": 0.003, "high": 0.1}},
    },
    "airbench-fifo": {
        "name": "plan-airbench",
        "num_samples": 4,
        "max_concurrent_trials": 2,
        "scheduler": {"type": "fifo"},
        "search": {"algorithm": "random", "seed": 0},
        "resources_per_trial": {"cpu": 1},
        "data": SUBSET,
        "fixed": {"model": "airbench", "width": 0.25, "epochs": 3, "batch_size": 128, "lr_schedule": "onecycle"},
        "params": {"lr": {"type": "loguniform", "low": 0.01, "high": 0.3}},
    },
    "airbench-refit": {
        "name": "plan-refit",
        "num_samples": 3,
        "max_concurrent_trials": 2,
        "scheduler": {"type": "fifo"},
        "search": {"algorithm": "random", "seed": 0},
        "resources_per_trial": {"cpu": 1},
        "data": {"train_subset": 4000, "val_fraction": 0.9},
        "refit": True,
        "fixed": {
            "model": "airbench",
            "width": 0.25,
            "epochs": 2,
            "batch_size": 128,
            "lr_schedule": "onecycle",
            "test_on_best": False,
        },
        "params": {"lr": {"type": "loguniform", "low": 0.01, "high": 0.3}},
    },
}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cifar_sweeps", *args], capture_output=True, text=True, cwd=ROOT, env=os.environ
    )


def phases(folder: Path, t_command: float) -> str:
    """Where the wait went, from the run's store: the command to the sweep stored, to its
    driver's start, to its first trial, the trials, and the end to the command's exit."""
    import sqlite3
    from datetime import datetime

    db = sqlite3.connect(folder / "cifar_sweeps.db")
    created, started, finished = db.execute(
        "select created_at, started_at, finished_at from sweeps order by created_at desc limit 1"
    ).fetchone()
    first, last = db.execute(
        "select min(t.started_at), max(t.finished_at) from trials t join sweeps s on s.id = t.sweep_id "
        "where s.created_at = ?",
        (created,),
    ).fetchone()

    def ts(x: str) -> float:
        return datetime.fromisoformat(x).replace(tzinfo=UTC).timestamp()

    marks = [t_command, ts(created), ts(started), ts(first), ts(last), ts(finished)]
    gaps = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    return "submit {:.0f} / driver {:.0f} / to 1st trial {:.0f} / trials {:.0f} / end {:.0f}".format(*gaps)


def one(spec_path: Path, folder: Path, data: str) -> tuple[dict, float, str]:
    common = ["--results-dir", str(folder), "--data", data]
    p = cli("plan", str(spec_path), *common, "--json")
    if p.returncode != 0:
        raise SystemExit(f"plan failed:\n{p.stderr[-2000:]}")
    plan = json.loads(p.stdout[p.stdout.index("{") :])
    t0, wall0 = time.perf_counter(), time.time()
    r = cli("run", str(spec_path), *common)
    waited = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"run failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return plan, waited, phases(folder, wall0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--specs", nargs="+", default=list(SPECS), choices=list(SPECS))
    p.add_argument("--data", default=default_data())
    args = p.parse_args()
    say_data(args.data)
    rows = []
    with tempfile.TemporaryDirectory(prefix="plan-accuracy-") as tmp:
        for name in args.specs:
            spec_path, folder = Path(tmp) / f"{name}.json", Path(tmp) / name
            spec_path.write_text(json.dumps(SPECS[name]))
            for state in ("cold", "warm"):
                plan, waited, where = one(spec_path, folder, args.data)
                expected = plan.get("wall_s_expected")
                ratio = f"{expected / waited:.2f}" if expected else "-"
                rows.append(
                    [name, state, plan["throughput_source"][:48], f"{expected or 0:.0f}", f"{waited:.0f}", ratio]
                )
                print(f"  {name} {state}: plan {expected} s, waited {waited:.0f} s ({where})", flush=True)
    print()
    print_table(["spec", "run", "throughput from", "plan s", "waited s", "plan / actual"], rows)
    print(f"\non {cpu_model()}; the target is 0.7 to 1.3")


if __name__ == "__main__":
    main()
