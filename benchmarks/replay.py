"""Searchers and schedulers replayed against a tabulated task (benchmarks/tabulate.py), on a
simulated clock: hundreds of seeds in minutes, no training.

    python benchmarks/replay.py --task mlp --seeds 200

Each method is a spec (the task's space with a searcher and a scheduler), replayed by
`cifar_sweeps.analysis.replay` (the searcher and scheduler a sweep builds; a suggestion
mapped to the nearest tabulated configuration; each epoch costing its tabulated seconds):
- the clock stops at the budget: by default, what the report's method (10 random trials,
  each trained in full, two at a time) spends on average, the same for every method.

Prints per method, over the seeds: the best validation accuracy and its configuration's
test accuracy at 25/50/75/100 % of the budget with 95 % intervals, and the fraction of the
budget it needed to match the report's method's final mean.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ROOT, cpu_model, print_table  # noqa: E402
from cifar_sweeps.analysis.replay import (  # noqa: E402
    Table,
    at,
    interval,
    load_table,
    replay,
    reseeded,
    table_spec,
)

POINTS = (0.25, 0.5, 0.75, 1.0)
REPORT = "report: random, full length"
METHODS: dict[str, dict[str, Any]] = {
    REPORT: {"search": {"algorithm": "random"}, "scheduler": {"type": "fifo"}},
    "random + ASHA 1/3": {"search": {"algorithm": "random"}, "scheduler": {"type": "asha"}},
    "hyperopt TPE (5) + ASHA 1/3": {"search": {"algorithm": "hyperopt", "n_initial_points": 5}},
    "optuna TPE (5) + ASHA 1/3": {"search": {"algorithm": "optuna", "n_initial_points": 5}},
    "optuna TPE (10) + ASHA 1/3": {"search": {"algorithm": "optuna", "n_initial_points": 10}},
    "optuna TPE (5) + ASHA 2/2": {
        "search": {"algorithm": "optuna", "n_initial_points": 5},
        "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2},
    },
    "optuna TPE (5) + fifo": {"search": {"algorithm": "optuna", "n_initial_points": 5}, "scheduler": {"type": "fifo"}},
}


def report_budget(table: Table, seeds: int = 200) -> float:
    """The mean compute of the report's method: 10 random trials, each in full."""
    spec = table_spec(table, METHODS[REPORT], 0, num_samples=10)
    totals = []
    for seed in range(seeds):
        stats: dict[str, float] = {}
        replay(table, reseeded(spec, seed), seed, math.inf, stats)
        totals.append(stats["seconds"])
    return statistics.fmean(totals)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, help="a table in --tables: <task>.csv and <task>.json")
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument(
        "--budget-s", type=float, default=None, help="simulated seconds (default: the report's method's mean)"
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--tables", type=Path, default=ROOT / "benchmarks" / "tables")
    args = p.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per study, hundreds of them
    t0 = time.perf_counter()
    table = load_table(args.tables / f"{args.task}.csv")
    budget = args.budget_s or report_budget(table)
    print(
        f"task {args.task}: {len(table.configs)} configurations x {table.seeds} seeds; budget {budget:.0f} "
        f"simulated s; {args.seeds} seeds per method",
        flush=True,
    )
    rows, finals = [], {}
    for name in [REPORT, *[m for m in args.methods if m != REPORT]]:
        spec = table_spec(table, METHODS[name], 0, num_samples=10 if name == REPORT else 100_000)
        curves = [replay(table, reseeded(spec, s), s, budget) for s in range(args.seeds)]
        finals[name] = [at(c, budget)[0] for c in curves]
        row: list[object] = [name]
        for f in POINTS:
            m, lo, hi = interval([at(c, f * budget)[0] * 100 for c in curves])
            row.append(f"{m:.2f} [{lo:.2f}, {hi:.2f}]")
        m, lo, hi = interval([at(c, budget)[1] * 100 for c in curves])
        row.append(f"{m:.2f} [{lo:.2f}, {hi:.2f}]")
        target = statistics.fmean(finals[REPORT])
        needed = [next((t / budget for t, v, _ in c if v >= target), math.nan) for c in curves]
        reached = [x for x in needed if not math.isnan(x)]
        row.append(f"{statistics.median(reached):.2f} ({len(reached)}/{len(curves)})" if reached else "never")
        rows.append(row)
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print()
    heads = [f"val @{int(f * 100)}% (95% CI)" for f in POINTS]
    print_table(["method", *heads, "test of best @100%", "budget to match the report"], rows)
    print(f"\n{args.seeds} seeds per method in {time.perf_counter() - t0:.0f} s on {cpu_model()}")


if __name__ == "__main__":
    main()
