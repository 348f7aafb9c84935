"""Searchers and schedulers replayed against a tabulated task (benchmarks/tabulate.py), on a
simulated clock: hundreds of seeds in minutes, no training.

    python benchmarks/replay.py --task mlp --seeds 200

Each method is a spec (the task's space with a searcher and a scheduler), replayed by
`cifar_sweeps.analysis.replay` (the searcher and scheduler a sweep builds; a suggestion
mapped to the nearest tabulated configuration; each epoch costing its tabulated seconds):
- the clock stops at the budget: by default, what the report's method (10 random trials,
  each trained in full, two at a time) spends on average, the same for every method.

Every method searches on past the report's 10 trials (random search goes on at random).
Prints per method, over the seeds: the best validation accuracy at 0.25, 0.5, 1 and 2 times
the budget with 95 % intervals, its trial's test accuracy at 1x and 2x, and the budget (as
a fraction of 1x, median over the seeds that got there) it needed to match the report's
method's mean at 1x. Then each method against the report's method seed by seed (a seed draws
the same random start for both) at 0.5, 1 and 2 times the budget: the mean difference with
its 95 % interval, and how many seeds a live benchmark (benchmarks/search_gain.py) would
need for its interval to exclude 0 at that difference and spread (a lower bound: a live
run's seeds also differ in training).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ROOT, cpu_model, print_table  # noqa: E402
from cifar_sweeps.analysis.replay import Table, at, interval, load_table  # noqa: E402
from cifar_sweeps.tuning.replay import replay, reseeded, table_spec  # noqa: E402

POINTS = (0.25, 0.5, 1.0, 2.0)  # of the budget (1x: the report's method's 10 trials)
REPORT = "report: random, full length"
METHODS: dict[str, dict[str, Any]] = {
    REPORT: {"search": {"algorithm": "random"}, "scheduler": {"type": "fifo"}},
    "random + ASHA 1/3": {"search": {"algorithm": "random"}, "scheduler": {"type": "asha"}},
    "hyperopt TPE (5) + ASHA 1/3": {"search": {"algorithm": "hyperopt", "n_initial_points": 5}},
    "optuna TPE (5) + ASHA 1/3": {"search": {"algorithm": "optuna", "n_initial_points": 5}},
    "optuna TPE (10) + ASHA 1/3": {"search": {"algorithm": "optuna", "n_initial_points": 10}},
    "optuna TPE (5) + ASHA 1/4": {
        "search": {"algorithm": "optuna", "n_initial_points": 5},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 4},
    },
    "optuna TPE (5) + ASHA 2/2": {
        "search": {"algorithm": "optuna", "n_initial_points": 5},
        "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2},
    },
    "optuna TPE (5) + fifo": {"search": {"algorithm": "optuna", "n_initial_points": 5}, "scheduler": {"type": "fifo"}},
    "hyperopt TPE (5) + fifo": {
        "search": {"algorithm": "hyperopt", "n_initial_points": 5},
        "scheduler": {"type": "fifo"},
    },
    # Fewer random points: a budget of a few trials never gets past a random start of 5.
    "hyperopt TPE (2) + fifo": {
        "search": {"algorithm": "hyperopt", "n_initial_points": 2},
        "scheduler": {"type": "fifo"},
    },
    "hyperopt TPE (3) + fifo": {
        "search": {"algorithm": "hyperopt", "n_initial_points": 3},
        "scheduler": {"type": "fifo"},
    },
    # The space's centre tried first (Tune's points_to_evaluate): a default is a good start
    # only where the default is good.
    "hyperopt TPE (5) + fifo, centre first": {
        "search": {"algorithm": "hyperopt", "n_initial_points": 5, "points_to_evaluate": "centre"},
        "scheduler": {"type": "fifo"},
    },
    "random + fifo, centre first": {
        "search": {"algorithm": "random", "points_to_evaluate": "centre"},
        "scheduler": {"type": "fifo"},
    },
}


def centre(space: dict[str, Any]) -> dict[str, Any]:
    """The middle of each range in its own scale (a log range's geometric mean), the middle
    choice, and the longest run: the configuration a sweep would start from by default."""
    out: dict[str, Any] = {}
    for name, p in space["params"].items():
        if p["type"] == "loguniform":
            out[name] = math.sqrt(p["low"] * p["high"])
        elif p["type"] == "uniform":
            out[name] = (p["low"] + p["high"]) / 2
        elif p["type"] == "quniform":
            out[name] = p["high"]
        elif p["type"] == "choice":
            out[name] = p["values"][len(p["values"]) // 2]
        else:  # the tables' spaces use the four above
            raise ValueError(f"{name}: no centre for a {p['type']} range")
    return out


def method_on(table: Table, name: str) -> dict[str, Any]:
    """A method's spec fragment, its "centre" start made the table's centre."""
    method = json.loads(json.dumps(METHODS[name]))
    if method["search"].get("points_to_evaluate") == "centre":
        method["search"]["points_to_evaluate"] = [centre(table.space)]
    return method


def report_budget(table: Table, seeds: int = 200) -> float:
    """The mean compute of the report's method: 10 random trials, each in full."""
    spec = table_spec(table, METHODS[REPORT], 0, num_samples=10)
    totals = []
    for seed in range(seeds):
        stats: dict[str, float] = {}
        replay(table, reseeded(spec, seed), seed, math.inf, stats)
        totals.append(stats["seconds"])
    return statistics.fmean(totals)


_TABLE: Table | None = None  # a worker's table, loaded once per process


def _init(path: str) -> None:
    global _TABLE
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per study, hundreds of them
    _TABLE = load_table(Path(path))


def _one(job: tuple[str, int, float]) -> list[tuple[float, float, float]]:
    name, seed, horizon = job
    spec = table_spec(_TABLE, method_on(_TABLE, name), seed)
    return replay(_TABLE, reseeded(spec, seed), seed, horizon)


def row_of(name: str, curves: list, budget: float, target: float) -> list[object]:
    row: list[object] = [name]
    for f in POINTS:
        m, lo, hi = interval([at(c, f * budget)[0] * 100 for c in curves])
        row.append(f"{m:.2f} [{lo:.2f}, {hi:.2f}]")
    for f in (1.0, POINTS[-1]):
        m, lo, hi = interval([at(c, f * budget)[1] * 100 for c in curves])
        row.append(f"{m:.2f} [{lo:.2f}, {hi:.2f}]")
    needed = [next((t / budget for t, v, _ in c if v >= target), math.nan) for c in curves]
    reached = [x for x in needed if not math.isnan(x)]
    row.append(f"{statistics.median(reached):.2f} ({len(reached)}/{len(curves)})" if reached else "never")
    return row


PAIRED_POINTS = (0.5, 1.0, 2.0)  # of the budget, for the paired differences
POWER = 0.8  # of a live benchmark's paired test at 5 %, for the seeds it needs


def seeds_needed(diffs: list[float]) -> str:
    """Seeds a paired comparison needs for its 95 % interval to exclude 0 with POWER, at this
    mean and spread: ((z_0.975 + z_POWER) * sd / |mean|)^2 (the normal approximation), or
    "never" past 10,000. A live benchmark's seeds also differ in training, so it needs more."""
    from scipy import stats

    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    if sd == 0:
        return "1" if mean else "never"
    n = ((stats.norm.ppf(0.975) + stats.norm.ppf(POWER)) * sd / abs(mean)) ** 2 if mean else math.inf
    return f"{math.ceil(n)}" if n <= 10_000 else "never"


def paired_row(name: str, curves: list, report: list, budget: float) -> list[object]:
    """A method against the report's method, seed by seed (a seed draws the same random
    start for both): the mean difference of the best validation accuracy (points) with its
    95 % interval, and the seeds a live comparison would need, at each of PAIRED_POINTS."""
    row: list[object] = [name]
    for f in PAIRED_POINTS:
        pairs = [(at(c, f * budget)[0], at(r, f * budget)[0]) for c, r in zip(curves, report, strict=True)]
        diffs = [(a - b) * 100 for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
        m, lo, hi = interval(diffs)
        row.append(f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}] ({seeds_needed(diffs)})")
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, help="a table in --tables: <task>.csv and <task>.json")
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument(
        "--budget-s", type=float, default=None, help="simulated seconds (default: the report's method's mean)"
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--tables", type=Path, default=ROOT / "benchmarks" / "tables")
    p.add_argument("--workers", type=int, default=2, help="processes (seeds are split among them)")
    args = p.parse_args()
    t0 = time.perf_counter()
    path = args.tables / f"{args.task}.csv"
    _init(str(path))
    table = _TABLE
    budget = args.budget_s or report_budget(table)
    print(
        f"task {args.task}: {len(table.configs)} configurations x {table.seeds} seeds; budget {budget:.0f} "
        f"simulated s (1x); {args.seeds} seeds per method, {args.workers} processes",
        flush=True,
    )
    names = [REPORT, *[m for m in args.methods if m != REPORT]]
    horizon = POINTS[-1] * budget
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.workers, _init, (str(path),)) as pool:
        results = {n: pool.map(_one, [(n, s, horizon) for s in range(args.seeds)]) for n in names}
    target = statistics.fmean(at(c, budget)[0] for c in results[REPORT])
    rows = [row_of(n, results[n], budget, target) for n in names]
    print()
    heads = [f"val @{f:g}x (95% CI)" for f in POINTS]
    print_table(["method", *heads, "test of best @1x", f"test @{POINTS[-1]:g}x", "budget to match the report"], rows)
    print(f"\nagainst the report's method, seed by seed: points [95 % CI] (seeds a live run needs, {POWER:.0%} power)")
    paired = [paired_row(n, results[n], results[REPORT], budget) for n in names if n != REPORT]
    print_table(["method", *(f"- report @{f:g}x" for f in PAIRED_POINTS)], paired)
    print(
        f"\n{args.seeds} seeds per method in {time.perf_counter() - t0:.0f} s on {cpu_model()}; 1x = {budget:.0f} "
        f"simulated s (the report's method's 10 full-length trials, two at a time, on average)"
    )
    print(f"simulated seconds: the table's, measured on {table_cpus(args.tables / f'{args.task}.json')}")


def table_cpus(meta: Path) -> str:
    """The CPU(s) a table's seconds were measured on (a resumed table lists each sitting's)."""
    if not meta.exists():
        return "an unknown CPU (no metadata)"
    m = json.loads(meta.read_text())
    return ", ".join(sorted({s["cpu"] for s in m.get("sittings", [])} or {m.get("cpu", "an unknown CPU")}))


if __name__ == "__main__":
    main()
