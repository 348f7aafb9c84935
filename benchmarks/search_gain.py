"""Does a sweep pay for itself? Three ways to spend the same wall time on one task, over
seeds, side by side on this CPU:

    python benchmarks/search_gain.py --task mlp --seeds 0 1 2 3 4 --minutes 4
    python benchmarks/search_gain.py --task airbench --seeds 0 1 2 3 4 --minutes 8
    python benchmarks/search_gain.py --task tinynet --seeds 0 1 2 3 4 --minutes 4

- (a) `student`: a student's default: Adam, lr 1e-3, batch 64, a constant lr, on every
  training image, as many epochs as the time allows (an epoch starts only if the last one's
  time still fits), tested once.
- (b) `report`: the report's method: random search, full-length trials (fifo), then the
  same refit as (c), in the same space as (c) and the same time budget.
- (c) `service`: the service's default sweep for the model: `"params": "auto"`, its default
  searcher (HyperOpt's TPE) and scheduler (ASHA), then the refit, in `time_budget_s`.

(b) and (c) keep the service's default share of the budget for the refit (`refit_share`
0.5: the refit trains as many epochs as fit in it); `--refit-share 0` runs them as before
it existed (the refit trains its source's epochs), recorded apart. (a) is the same either way.

The refit's epochs in its share count its own CPUs (two probes of its shape: it runs alone
with both, a search trial with one; the square root of their ratio); rows from before that
(another `refit_rate`, or none) are kept apart, and so are rows from another CPU, and rows
of (b) and (c) from before the automatic space decayed the lr (no `lr_schedule`).

(b) and (c) run two one-CPU trials at a time and refit with both CPUs; (a) trains with
both. Each seed seeds the search, the training and (a)'s run; the split is the same for
all. Every run is one line of `--out` (JSON lines): a killed benchmark goes on where it
stopped, and the table is printed from every run there. The table: each method's mean
test accuracy with its 95 % t-interval, and the paired differences of (c) against (a)
and (b), seed by seed, with theirs.

Tasks (the users the service stands for):
- `mlp`: the course MLP on CIFAR-10 (the report's first net);
- `airbench`: the airbench net at half width (a fast conv net with no recipe of its own);
- `tinynet`: the example plug-in (examples/tinynet-plugin, installed) on a 3-class,
  48-pixel image folder cut from the archive (airplane, cat, ship; 5,000 training and
  1,000 test images each, upscaled), written once beside the data cache.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import append_run, cache_dir, cpu_model, default_data, print_table, read_runs, say_data  # noqa: E402
from cifar_sweeps.sweepspec.autospace import AUTO_SCHEDULE  # noqa: E402  (b)'s and (c)'s lr schedule: rows apart

METHODS = ("student", "report", "service")
# How the refit's rate is estimated in the code measured: "probed-sqrt" (its own CPUs, two
# probes, the square root of their ratio) since the refit ran past its share at the probed
# ratio; "probed" rows are from before, rows with none were planned at a trial's rate.
REFIT_RATE = "probed-sqrt"
TASKS = {
    "mlp": {"model": "mlp"},
    "airbench": {"model": "airbench", "width": 0.5},
    "tinynet": {"model": "tinynet", "model_args": {"channels": 16, "blocks": 3}},
}
FOLDER_CLASSES = ("airplane", "cat", "ship")
FOLDER_SIZE = 48


# ------------------------------------------------------------ the data of a task


def task_data(task: str, data: str) -> tuple[str, int]:
    """(the data source, its image size) of a task: the archive, or for tinynet the 3-class
    48-pixel folder cut from it (written once)."""
    if task != "tinynet" or data.startswith("synthetic:"):
        return data, 32 if task != "tinynet" else FOLDER_SIZE
    root = cache_dir() / f"three-classes-{FOLDER_SIZE}px"
    if not (root / "done").exists():
        write_folder(data, root)
    return str(root), FOLDER_SIZE


def write_folder(data: str, root: Path) -> None:
    from PIL import Image

    from cifar_sweeps.training.data import load_cifar

    print(f"writing {root} from {data} (once)...", flush=True)
    c = load_cifar(data, cache_dir(), progress=False)
    for split, (x, y) in {"train": (c.x_train, c.y_train), "test": (c.x_test, c.y_test)}.items():
        for name in FOLDER_CLASSES:
            label = c.classes.index(name)
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(x[y == label]):
                Image.fromarray(img).resize((FOLDER_SIZE, FOLDER_SIZE), Image.BICUBIC).save(d / f"{i:04d}.png")
    (root / "done").write_text("ok")


# ------------------------------------------------------------ the three methods


def student(task: str, source: str, size: int, seed: int, seconds: float) -> dict:
    """(a): Adam at 1e-3, batch 64, every training image, epochs while the time lasts."""
    from cifar_sweeps.training.data import load_splits
    from cifar_sweeps.training.train import TrainConfig, Trainer

    t0 = time.perf_counter()
    splits = load_splits(source, cache_dir(), 0.0, 0, image_size=size)
    cfg = TrainConfig(
        **TASKS[task], optimizer="adam", lr=1e-3, batch_size=64, epochs=10_000, seed=seed, threads=2, flip=True
    )
    trainer = Trainer(cfg, splits, test_epochs=frozenset())
    last = 0.0
    while time.perf_counter() - t0 + last < seconds:
        e0 = time.perf_counter()
        trainer.step_epoch()
        last = time.perf_counter() - e0
    trainer.best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    test = trainer.test_best()
    return {"test_acc": test, "epochs": trainer.epoch, "configs": 1, "wall_s": time.perf_counter() - t0}


def sweep_spec(task: str, method: str, size: int, seed: int, seconds: float, share: float | None = 0.5) -> dict:
    """(b) or (c) as a spec: the automatic space of the task's model, the same resources,
    time budget and refit; the report's method searches it at random with full-length
    trials, the service with its defaults."""
    spec = {
        "name": f"gain-{task}-{method}-{seed}",
        "num_samples": 200,  # the time budget ends the search
        "max_concurrent_trials": 2,
        "resources_per_trial": {"cpu": 1, "gpu": 0},
        "fixed": {**TASKS[task], "seed": seed},
        "params": "auto",
        "refit": True,
        "refit_share": share,  # None: the refit trains its source's epochs
        "time_budget_s": seconds,
        "data": {"image_size": size, "val_fraction": 0.1},
        "search": {"seed": seed},
    }
    if method == "report":
        spec["search"] = {"algorithm": "random", "seed": seed}
        spec["scheduler"] = {"type": "fifo"}
    return spec


def sweep(task: str, method: str, source: str, size: int, seed: int, seconds: float, share: float | None) -> dict:
    import cifar_sweeps as cs

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        run = cs.run(sweep_spec(task, method, size, seed, seconds, share), data=source, results_dir=d, quiet=True)
        board = run.leaderboard(top=1000)
        refit = next((t for t in board if t.refit_of), None)
        source_trial = next((t for t in board if refit and t.trial_id == refit.refit_of), None)
        configs = sum(1 for t in board if not t.refit_of and t.epochs)
        shutil.rmtree(Path(d) / "ray", ignore_errors=True)
    return {
        "test_acc": refit.test_acc if refit else None,
        "epochs": refit.epochs if refit else 0,
        "source_epochs": source_trial.epochs if source_trial else None,
        "configs": configs,
        "wall_s": time.perf_counter() - t0,
        "refit_config": {k: v for k, v in (refit.config if refit else {}).items() if k not in TASKS[task]},
    }


# ------------------------------------------------------------ the table


def t_interval(xs: list[float]) -> tuple[float, float, float]:
    """The mean and its 95 % t-interval (no interval for one value)."""
    from scipy import stats

    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, math.nan, math.nan
    half = stats.t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    return m, m - half, m + half


def table(rows: list[dict], task: str) -> None:
    mine = [r for r in rows if r["task"] == task and r.get("test_acc") is not None]
    by = {m: {r["seed"]: r for r in mine if r["method"] == m} for m in METHODS}
    out = []
    for m in METHODS:
        accs = [r["test_acc"] * 100 for r in by[m].values()]
        if not accs:
            continue
        mean, lo, hi = t_interval(accs)
        runs = by[m].values()
        out.append(
            [
                m,
                len(accs),
                mean,
                lo,
                hi,
                statistics.fmean(r["configs"] for r in runs),
                statistics.fmean(r["epochs"] for r in runs),  # the model's: the student's run, or the refit
                statistics.fmean(r["wall_s"] for r in runs) / 60,
            ]
        )
    print(f"\ntask {task}: test accuracy (%) over seeds")
    print_table(["method", "seeds", "mean", "95% low", "95% high", "configs", "model epochs", "wall min"], out)
    diffs = []
    for other in ("student", "report"):
        seeds = sorted(set(by["service"]) & set(by[other]))
        d = [(by["service"][s]["test_acc"] - by[other][s]["test_acc"]) * 100 for s in seeds]
        if d:
            mean, lo, hi = t_interval(d)
            verdict = "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"
            diffs.append([f"service - {other}", len(d), mean, lo, hi, verdict])
    if diffs:
        print_table(["paired difference", "seeds", "mean", "95% low", "95% high", "verdict"], diffs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=list(TASKS), required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--minutes", type=float, default=4.0, help="the wall time of every run")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument(
        "--refit-share", type=float, default=0.5, help="(b) and (c): the budget's share for the refit; 0: none"
    )
    p.add_argument("--data", default=default_data(), help="default: the PNG archive beside the checkout")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/search_gain.jsonl"))
    args = p.parse_args()
    say_data(args.data)
    share = args.refit_share or None
    cpu = cpu_model()  # a time budget buys another CPU other epochs: rows compare on one CPU only
    rows = [
        r
        for r in read_runs(args.out)
        if r["cpu"] == cpu
        and (
            r["method"] == "student"
            or (
                r.get("refit_share") == share
                # "search_epochs": rows of an experiment since reverted (b0ac51b: the service's
                # epochs fitted to the time budget; docs/performance.md), kept apart
                and "search_epochs" not in r
                and r.get("refit_rate", "search") == (REFIT_RATE if share else "search")
                and r.get("lr_schedule", "none") == AUTO_SCHEDULE
            )
        )
    ]
    done = {(r["task"], r["method"], r["seed"], r["minutes"], r["data"]) for r in rows}
    source, size = task_data(args.task, args.data)
    for seed in args.seeds:
        for method in args.methods:
            key = (args.task, method, seed, args.minutes, args.data)
            if key in done:
                continue
            t0 = time.perf_counter()
            run = student if method == "student" else lambda *a, m=method: sweep(a[0], m, *a[1:], share)
            result = run(args.task, source, size, seed, args.minutes * 60)
            row = {
                "task": args.task,
                "method": method,
                "seed": seed,
                "minutes": args.minutes,
                "data": args.data,
                "cpu": cpu,
                **({} if method == "student" else {"refit_share": share}),
                **({"refit_rate": REFIT_RATE} if method != "student" and share else {}),
                **({} if method == "student" else {"lr_schedule": AUTO_SCHEDULE}),
                **result,
            }
            rows.append(row)
            append_run(args.out, row)
            print(
                f"{args.task} {method} seed {seed}: test {result['test_acc']} after {result['configs']} "
                f"configurations in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    table([r for r in rows if r["minutes"] == args.minutes and r["data"] == args.data], args.task)


if __name__ == "__main__":
    main()
