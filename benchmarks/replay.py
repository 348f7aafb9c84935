"""Searchers and schedulers replayed against a tabulated task (benchmarks/tabulate.py), on a
simulated clock: hundreds of seeds in minutes, no training.

    python benchmarks/replay.py --task mlp --seeds 200

Each method is a spec (the task's space with a searcher and a scheduler); its searcher and
scheduler are built by the same functions a sweep uses (`tuning.searchers.make_search`,
`tuning.schedulers.make_scheduler`), and fed results from the table:
- a suggestion is mapped to the nearest tabulated configuration: each parameter scaled to
  [0, 1] on its own scale (log for loguniform), a choice counting 0 when equal and 1 when
  not, Euclidean distance over the parameters;
- a trial then follows that configuration's curve for one training seed (the replay seed
  and the trial's number pick which), epoch by epoch, each epoch costing its tabulated
  seconds; `max_concurrent_trials` run at once; the scheduler's STOP ends a trial;
- the clock stops at the budget: by default, what the report's method (10 random trials,
  each trained in full) spends on average, the same for every method.

Prints per method, over the seeds: the best validation accuracy and its configuration's
test accuracy at 25/50/75/100 % of the budget with 95 % intervals, and the fraction of the
budget it needed to match the report's method's final mean.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ROOT, cpu_model, print_table  # noqa: E402

POINTS = (0.25, 0.5, 0.75, 1.0)
REPORT = "report: random, full length"
METHODS: dict[str, dict[str, Any]] = {
    REPORT: {"search": {"algorithm": "random"}, "scheduler": {"type": "fifo"}, "max_concurrent_trials": 1},
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


@dataclass
class Table:
    space: dict[str, Any]  # {"fixed": ..., "params": ...}
    configs: dict[int, dict[str, Any]]
    curves: dict[tuple[int, int], list[tuple[float, float, float]]]  # (config, seed) -> (val, test, seconds) each epoch
    seeds: int = 1

    def curve(self, config_id: int, seed: int) -> list[tuple[float, float, float]]:
        return self.curves.get((config_id, seed % self.seeds)) or self.curves[(config_id, 0)]


def load_table(path: Path) -> Table:
    meta = json.loads(path.with_suffix(".json").read_text())
    configs: dict[int, dict[str, Any]] = {}
    curves: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
    with path.open() as f:
        for r in csv.DictReader(f):
            cid, seed = int(r["config_id"]), int(r["seed"])
            configs[cid] = json.loads(r["params"])
            curves.setdefault((cid, seed), []).append((float(r["val_acc"]), float(r["test_acc"]), float(r["seconds"])))
    return Table(meta["space"], configs, curves, max(s for _, s in curves) + 1)


# ------------------------------------------------------------ the nearest configuration (pure)


def coordinate(p: dict[str, Any], v: Any) -> float:
    if p["type"] == "choice":
        return float(p["values"].index(v)) if v in p["values"] else -1.0
    if p["type"] in ("loguniform", "qloguniform"):
        return (math.log(v) - math.log(p["low"])) / (math.log(p["high"]) - math.log(p["low"]))
    return (float(v) - p["low"]) / (p["high"] - p["low"])


def distance(params: dict[str, dict[str, Any]], a: dict[str, Any], b: dict[str, Any]) -> float:
    total = 0.0
    for name, p in params.items():
        if p["type"] == "choice":
            total += 0.0 if a.get(name) == b.get(name) else 1.0
        else:
            total += (coordinate(p, a[name]) - coordinate(p, b[name])) ** 2
    return total


def nearest(table: Table, suggestion: dict[str, Any]) -> int:
    params = table.space["params"]
    return min(table.configs, key=lambda cid: distance(params, suggestion, table.configs[cid]))


# ------------------------------------------------------------ one replay


@dataclass(frozen=True)
class ReplayTrial:
    """What a Tune scheduler reads of a trial."""

    trial_id: str
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def make_spec(table: Table, method: dict[str, Any], seed: int, num_samples: int = 100_000):
    from cifar_sweeps.spec.spec import parse_spec

    raw = {
        "name": "replay",
        "metric": "best_val_acc",
        "mode": "max",
        "num_samples": num_samples,
        "max_concurrent_trials": 2,
        "fixed": table.space["fixed"],
        "params": table.space["params"],
        **json.loads(json.dumps(method)),
    }
    raw["search"] = {**raw.get("search", {}), "seed": seed}
    return parse_spec(raw)


def replay(
    table: Table, spec, seed: int, budget_s: float, spent: list[float] | None = None
) -> list[tuple[float, float, float]]:
    """The anytime curve of one run: (simulated seconds, best validation so far, the test
    accuracy of that best trial's epoch) at each result that improved the best; `spent`, if
    given, gets the simulated seconds the run used in all."""
    import numpy as np

    from cifar_sweeps.spec.spaces import flatten_config
    from cifar_sweeps.tuning.schedulers import make_scheduler
    from cifar_sweeps.tuning.searchers import make_search

    np.random.seed(seed)  # ASHA picks its bracket with numpy's global RNG
    searcher = make_search(spec)
    scheduler = make_scheduler(spec, "sqlite://", "replay")
    events: list[tuple[float, int, str]] = []  # (when the next epoch of a trial ends, order, trial id)
    trials: dict[str, tuple[ReplayTrial, list[tuple[float, float, float]], list[float]]] = {}
    clock, started, order, best = 0.0, 0, 0, (-1.0, math.nan)
    curve: list[tuple[float, float, float]] = []

    def start() -> bool:
        nonlocal started, order
        tid = f"t{started}"
        config = searcher.suggest(tid)
        if config is None:
            return False
        cid = nearest(table, flatten_config(config))
        trial, runs = ReplayTrial(tid, config), table.curve(cid, seed + started)
        scheduler.on_trial_add(None, trial)
        trials[tid] = (trial, runs, [])
        heapq.heappush(events, (clock + runs[0][2], order, tid))
        started, order = started + 1, order + 1
        return True

    while len(events) < spec.max_concurrent_trials and started < spec.num_samples and start():
        pass
    while events:
        clock, _, tid = heapq.heappop(events)
        if clock > budget_s:
            break
        trial, runs, vals = trials[tid]
        val, test, _ = runs[len(vals)]
        vals.append(val)
        epoch = len(vals)
        result = {"epoch": epoch, "training_iteration": epoch, "val_acc": val, "best_val_acc": max(vals)}
        if val > best[0]:
            best = (val, test)
            curve.append((clock, val, test))
        action = scheduler.on_trial_result(None, trial, result)
        searcher.on_trial_result(tid, result)
        if action == "STOP" or epoch == len(runs):
            scheduler.on_trial_complete(None, trial, result)
            searcher.on_trial_complete(tid, result)
            if started < spec.num_samples:
                start()
        else:
            heapq.heappush(events, (clock + runs[epoch][2], order, tid))
            order += 1
        if spent is not None:
            spent[:] = [clock]
    return curve


def at(curve: list[tuple[float, float, float]], t: float) -> tuple[float, float]:
    """(best validation, its test) at simulated time t (nan before the first result)."""
    seen = [c for c in curve if c[0] <= t]
    return (seen[-1][1], seen[-1][2]) if seen else (math.nan, math.nan)


def report_budget(table: Table, seeds: int = 200) -> float:
    """The mean compute of the report's method: 10 random trials, each in full."""
    spec = make_spec(table, METHODS[REPORT], 0, num_samples=10)
    totals = []
    for seed in range(seeds):
        spent = [0.0]
        seeded = spec.model_copy(update={"search": spec.search.model_copy(update={"seed": seed})})
        replay(table, seeded, seed, 1e18, spent)
        totals.append(spent[0])
    return statistics.fmean(totals)


def interval(xs: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return math.nan, math.nan, math.nan
    m = statistics.fmean(xs)
    half = stats.t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else math.nan
    return m, m - half, m + half


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
        spec = make_spec(table, METHODS[name], 0, num_samples=10 if name == REPORT else 100_000)
        curves = [
            replay(table, spec.model_copy(update={"search": spec.search.model_copy(update={"seed": s})}), s, budget)
            for s in range(args.seeds)
        ]
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
