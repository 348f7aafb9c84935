"""Search at equal compute: the report's method against this project's searchers, each
given the same total trial-epochs, on real CIFAR-10, several seeds.

    python benchmarks/search_efficiency.py --seeds 0 1 2 3 4 5 6 7 8 9
    python benchmarks/search_efficiency.py --task mlp --seeds $(seq 0 19)   # the replay's live check

Fixed before comparing (the space, the seeds, the budget rule):
- The space is the report's shape: lr U(0.001, 0.1), batch {32, 64, 128}, SGD momentum
  0.9, and its epochs quniform(10, 100, 5) scaled by 1/10 to quniform(1, 10, 1) so that
  five seeds fit a 2-core CPU: the course MLP (`--model`) on 2,500 training images,
  scored on 2,000 validation images (and the best trial on 2,000 test images).
- The report's method: hyperopt's fmin with max_evals=10 and its default 20 startup jobs,
  i.e. 10 random draws, each trained for its full sampled epochs, scored by its best
  epoch (search.algorithm `random`, scheduler fifo, metric best_val_acc).
- The budget: the epochs that run spent (its sampled epochs added up), per seed.
- The candidates, each with that budget (`budget.epochs`, num_samples left open), trials
  budgeted the space's largest epoch count and cut by ASHA (grace 1, reduction 3), same
  metric: HyperOpt TPE and Optuna's multivariate TPE, 5 random trials first; and BOHB
  with its own HyperBand (reduction 3; its model per budget after 5 results there).

With `--task` (mlp, airbench, tinynet), the space, images and methods are a tabulated task's
and the replay's (tabulate.py, replay.py): the report's method is 10 random draws of the
task's space, each trained in full; a candidate (`--methods hyperopt`, by default) searches
the same space, epochs included, until it has spent what the report's method spent on that
seed. It is the replay checked live: the same comparison, trained.

Prints per method the best val_acc at 25/50/75/100 % of the budget (an anytime curve
from every epoch in the order it was recorded), the test_acc of the final best trial,
and the fraction of the budget it needed to reach the report method's final best; then
medians over the seeds; then, over the seeds, the mean best@100 % with its 95 % t-interval
and the paired difference against the report's method (same seeds) with its interval.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cache_dir, default_data, fit_sweep, median, print_table, say_data  # noqa: E402
from cifar_sweeps.training.data import Splits, load_splits, train_subset  # noqa: E402

POINTS = (0.25, 0.5, 0.75, 1.0)  # fractions of the budget the anytime curve is read at
REPORT_NAME = "report (random, full length)"
METHODS = {
    REPORT_NAME: {"search": {"algorithm": "random"}, "scheduler": {"type": "fifo"}},
    "hyperopt TPE + ASHA": {"search": {"algorithm": "hyperopt", "n_initial_points": 5}, "scheduler": {"type": "asha"}},
    "optuna TPE + ASHA": {"search": {"algorithm": "optuna", "n_initial_points": 5}, "scheduler": {"type": "asha"}},
    "BOHB + its HyperBand": {
        "search": {"algorithm": "bohb", "n_initial_points": 5},
        "scheduler": {"type": "hyperband"},
    },
}
SHORT = dict(zip(("report", "hyperopt", "optuna", "bohb"), METHODS, strict=True))  # --methods names


# The replay's methods (benchmarks/replay.py) run live on a tabulated task's space: the
# live check of the replay, the same searcher and scheduler on the same space and images.
FIFO = {"type": "fifo"}
TPE5 = {name: {"algorithm": name, "n_initial_points": 5} for name in ("hyperopt", "optuna")}
TASK_METHODS: dict[str, dict[str, Any]] = {
    REPORT_NAME: {"search": {"algorithm": "random"}, "scheduler": FIFO},
    "hyperopt TPE (5) + ASHA 1/3": {"search": TPE5["hyperopt"]},
    "hyperopt TPE (5) + fifo": {"search": TPE5["hyperopt"], "scheduler": FIFO},
    "optuna TPE (5) + ASHA 1/3": {"search": TPE5["optuna"]},
    "optuna TPE (5) + fifo": {"search": TPE5["optuna"], "scheduler": FIFO},
}
TASK_SHORT = dict(zip(("report", "hyperopt", "hyperopt-fifo", "optuna", "optuna-fifo"), TASK_METHODS, strict=True))


def task_spec(args, name: str, seed: int, budget: int | None):
    """A method on a tabulated task's space (tabulate.py's TASKS): the report's method is 10
    random trials, each its full sampled epochs; a candidate searches the same space (epochs
    included, as the replay does) until it has spent `budget` trial-epochs."""
    from benchmarks.tabulate import TASKS
    from cifar_sweeps.sweepspec.schema import parse_spec

    task = TASKS[args.task]
    spec = {
        "name": f"eff-{args.task}-{seed}",
        "metric": "best_val_acc",
        "mode": "max",
        "max_concurrent_trials": args.concurrency,
        "search": {**TASK_METHODS[name]["search"], "seed": seed},
        "scheduler": TASK_METHODS[name].get("scheduler", {"type": "asha"}),
        "resources_per_trial": {"cpu": args.threads},
        "checkpoint_every": 100,
        "fixed": dict(task["fixed"]),
        "params": task["params"],
    }
    if budget is None:
        spec["num_samples"] = args.num_samples
    else:
        spec["budget"] = {"epochs": budget}
    return parse_spec(spec)


def make_spec(args, name: str, seed: int, budget: int | None):
    from cifar_sweeps.sweepspec.schema import parse_spec

    if args.task:
        return task_spec(args, name, seed, budget)
    method = METHODS[name]
    epochs = {"type": "quniform", "low": args.min_epochs, "high": args.max_epochs, "q": 1}
    spec = {
        "name": f"eff-{seed}",
        "metric": "best_val_acc",
        "mode": "max",
        "max_concurrent_trials": args.concurrency,
        "search": {**method["search"], "seed": seed},
        "scheduler": method["scheduler"],
        "resources_per_trial": {"cpu": args.threads},
        "checkpoint_every": 100,  # the same checkpoint cost for all: new bests and the last epoch only
        "fixed": {"model": args.model, "optimizer": "sgd", "momentum": 0.9},
        "params": {
            "lr": {"type": "uniform", "low": 0.001, "high": 0.1},
            "batch_size": {"type": "choice", "values": [32, 64, 128]},
        },
    }
    if budget is None:  # the report's method: 10 draws of the whole space, epochs included
        spec["num_samples"] = args.num_samples
        spec["params"]["epochs"] = epochs
    else:  # a candidate: the same compute, ASHA decides how long each trial runs
        spec["budget"] = {"epochs": budget}
        spec["fixed"]["epochs"] = args.max_epochs
    return parse_spec(spec)


def anytime(epochs: list, budget: int) -> list[float]:
    """The best val_acc seen once each fraction of `budget` epochs was spent."""
    best, out, curve = -math.inf, [], []
    for e in epochs:
        best = max(best, e.val_acc)
        curve.append(best)
    for frac in POINTS:
        n = min(len(curve), math.floor(frac * budget))
        out.append(curve[n - 1] if n else float("nan"))
    return out


def needed(epochs: list, target: float, budget: int) -> float:
    """The fraction of the budget spent when the best val_acc first reached `target`."""
    best = -math.inf
    for i, e in enumerate(epochs, 1):
        best = max(best, e.val_acc)
        if best >= target - 1e-12:
            return i / budget
    return math.inf


def run_one(args, name: str, seed: int, splits: Splits, budget: int | None) -> dict:
    trials, wall, epochs = fit_sweep(make_spec(args, name, seed, budget), splits, with_epochs=True)
    best = max(trials, key=lambda t: t.val_acc or 0)
    return {
        "epochs": epochs,
        "spent": len(epochs),
        "trials": len(trials),
        "wall": wall,
        "best_val": best.val_acc,
        "best_test": best.test_acc,
    }


def load(args) -> Splits:
    if args.task:  # the table's own images: its training subset, validation and test prefixes
        from benchmarks.tabulate import _load

        return _load(args.task, args.data)
    s = train_subset(load_splits(args.data, cache_dir()), args.train_images)
    # Random, not leading, evaluation images: an image-folder test set is in class order.
    rng = np.random.default_rng(0)
    v = rng.permutation(len(s.y_val))[: args.eval_images]
    t = rng.permutation(len(s.y_test))[: args.eval_images]
    return Splits(s.x_train, s.y_train, s.x_val[v], s.y_val[v], s.x_test[t], s.y_test[t])


def seed_rows(args, seed: int, splits: Splits) -> list[list]:
    """Every method on one seed: the report's first, whose spent epochs are the budget."""
    report = run_one(args, REPORT_NAME, seed, splits, None)
    budget, target = report["spent"], report["best_val"]
    rows = []
    for name in args.methods:
        r = report if name == REPORT_NAME else run_one(args, name, seed, splits, budget)
        curve = anytime(r["epochs"], budget)
        rows.append(
            [
                seed,
                name,
                budget,
                r["spent"],
                r["trials"],
                *curve,
                r["best_test"] or float("nan"),
                needed(r["epochs"], target, budget),
                r["wall"],
            ]
        )
        print(f"  seed {seed} {name}: {rows[-1][2:]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--num-samples", type=int, default=10, help="the report's max_evals")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-images", type=int, default=2500)
    ap.add_argument("--eval-images", type=int, default=2000)
    ap.add_argument("--min-epochs", type=int, default=1)
    ap.add_argument("--max-epochs", type=int, default=10)
    ap.add_argument(
        "--methods",
        nargs="+",
        choices=sorted({*SHORT, *TASK_SHORT}),
        default=None,
        help="the candidates to run (the report's method always runs: it sets the budget); "
        f"without --task: {', '.join(SHORT)} (all by default); with it: {', '.join(TASK_SHORT)} "
        "(hyperopt by default)",
    )
    ap.add_argument(
        "--task",
        choices=["mlp", "airbench", "tinynet"],
        help="a tabulated task's space and images (tabulate.py), with the replay's methods: the replay's live check",
    )
    args = ap.parse_args(argv)
    say_data(args.data)
    short = TASK_SHORT if args.task else SHORT
    chosen = args.methods or (["hyperopt"] if args.task else list(SHORT))
    if unknown := [m for m in chosen if m not in short]:
        ap.error(f"--methods {' '.join(unknown)}: not a method {'with' if args.task else 'without'} --task")
    args.methods = [REPORT_NAME] + [short[m] for m in chosen if m != "report"]

    import ray

    splits = load(args)
    ray.init(
        num_cpus=args.concurrency * args.threads, include_dashboard=False, logging_level="ERROR", log_to_driver=False
    )
    rows = [row for seed in args.seeds for row in seed_rows(args, seed, splits)]
    ray.shutdown()
    heads = [
        "seed",
        "method",
        "budget",
        "spent",
        "trials",
        *[f"best@{int(p * 100)}%" for p in POINTS],
        "its test_acc",
        "budget to match report",
        "wall s",
    ]
    print()
    print_table(heads, [[*r[:5], *[f"{x:.3f}" for x in r[5:10]], _frac(r[10]), f"{r[11]:.0f}"] for r in rows])
    print()
    print_table(
        ["method (median over seeds)", *heads[5:10], heads[10], "best@100% - report (points)"],
        [_medians(rows, name) for name in args.methods],
    )
    print()
    print_table(
        [
            "method (over seeds)",
            "n",
            "best@100% mean [95% interval]",
            "gain vs report, paired (points) [95% interval]",
            "paired t-test p",
        ],
        [_intervals(rows, name) for name in args.methods],
    )
    print("targets: the default 1.0 point or more above the report at 100 %; matches it within 1/3 of the budget")
    return 0


def _intervals(rows: list[list], name: str) -> list:
    """Mean and 95 % t-interval of best@100 % over the seeds, and of the paired difference
    against the report's method on the same seeds (ranking.py's statistics)."""
    from cifar_sweeps.analysis.ranking import summarize

    mine = {r[0]: r[8] for r in rows if r[1] == name}
    report = {r[0]: r[8] for r in rows if r[1] == REPORT_NAME}
    seeds = sorted(set(mine) & set(report))
    best = summarize([mine[s] for s in seeds])
    diff = summarize([(mine[s] - report[s]) * 100 for s in seeds])
    p = _paired_p([mine[s] for s in seeds], [report[s] for s in seeds])
    return [
        name,
        len(seeds),
        _ci(best, "{:.3f}"),
        "-" if name == REPORT_NAME else _ci(diff, "{:+.2f}"),
        "-" if name == REPORT_NAME or p is None else f"{p:.3f}",
    ]


def _ci(s, f: str) -> str:
    if s.n < 2:
        return f.format(s.mean) + " (one seed: no interval)"
    return f"{f.format(s.mean)} [{f.format(s.low)}, {f.format(s.high)}]"


def _paired_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p of the paired t-test (the same seeds: the differences' mean against 0)."""
    if len(a) < 2:
        return None
    from scipy import stats

    d = [x - y for x, y in zip(a, b, strict=True)]
    return 1.0 if len(set(d)) == 1 and d[0] == 0 else float(stats.ttest_rel(a, b).pvalue)


def _medians(rows: list[list], name: str) -> list:
    mine = [r for r in rows if r[1] == name]
    report = {r[0]: r[8] for r in rows if r[1] == REPORT_NAME}
    cols = [median([r[i] for r in mine]) for i in range(5, 10)]
    return [
        name,
        *[f"{c:.3f}" for c in cols],
        _frac(median([r[10] for r in mine])),
        f"{median([(r[8] - report[r[0]]) * 100 for r in mine]):+.1f}",
    ]


def _frac(x: float) -> str:
    return "not reached" if math.isinf(x) else f"{x:.2f}"


if __name__ == "__main__":
    sys.exit(main())
