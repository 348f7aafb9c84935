"""Learning curves measured once, for replaying searchers against them (benchmarks/replay.py):
a fixed sample of a task's configurations, each trained as a complete run of its own epochs
with two training seeds, every epoch's validation and test accuracy and seconds recorded.

    python benchmarks/tabulate.py --task mlp          # then airbench, tinynet; resumable
    python benchmarks/tabulate.py --task mlp --configs 8 --data synthetic:600   # a smoke run

The sample: a scrambled Sobol sequence (scipy.stats.qmc, seeded) over the task's space,
mapped per parameter (log scale for loguniform, steps for quniform, an index for a choice):
the same configurations on every machine for a given --configs and --sample-seed.

Each run of a configuration and seed is one job; `--workers` jobs run at once, each in a
process of its own with one torch thread (the CPU's cores split evenly: the seconds of
concurrent runs are comparable). A finished job's rows are appended to `<task>.csv` at once,
so a killed run keeps what it measured and the next one does only the rest. Rows: task,
config_id, the configuration's parameters, seed, epoch, val_acc, test_acc (of this epoch's
weights), seconds (the epoch's training and validation, not its test; the process's CPU
seconds, see CLOCK). `<task>.json` beside it holds the space, the data, the command, the
commit and the CPU of each sitting.

Tasks (small enough that one tabulates within a few hours of two cores):
- `mlp`: the course MLP on 5,000 CIFAR-10 training images (2,000 validate, the 10,000 test
  images test), SGD; the report's space widened by weight decay and momentum.
- `airbench`: the airbench net at width 0.25, no recipe, on the same training images (5,000
  test images); SGD with Nesterov momentum and a one-cycle schedule; lr, weight decay, label
  smoothing, batch size and epochs.
- `tinynet`: the example plug-in on the 3-class 48-pixel folder that search_gain.py cuts from
  the archive (3,000 training images); lr, weight decay, label smoothing, batch size, epochs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ROOT, cache_dir, cpu_model, default_data, say_data  # noqa: E402

BATCHES = [32, 64, 128]
TASKS: dict[str, dict[str, Any]] = {
    "mlp": {
        "fixed": {"model": "mlp", "optimizer": "sgd"},
        "params": {
            "lr": {"type": "uniform", "low": 0.001, "high": 0.1},
            "batch_size": {"type": "choice", "values": BATCHES},
            "epochs": {"type": "quniform", "low": 1, "high": 12, "q": 1},
            "weight_decay": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
            "momentum": {"type": "uniform", "low": 0.5, "high": 0.99},
        },
        "data": {"train_subset": 5000, "val_images": 2000, "test_images": 10000, "image_size": 32},
    },
    "airbench": {
        "fixed": {"model": "airbench", "width": 0.25, "optimizer": "sgd", "nesterov": True, "lr_schedule": "onecycle"},
        "params": {
            "lr": {"type": "loguniform", "low": 0.003, "high": 0.3},
            "weight_decay": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
            "label_smoothing": {"type": "uniform", "low": 0.0, "high": 0.2},
            "batch_size": {"type": "choice", "values": [64, 128, 256]},
            "epochs": {"type": "quniform", "low": 2, "high": 10, "q": 1},
        },
        "data": {"train_subset": 5000, "val_images": 2000, "test_images": 5000, "image_size": 32},
    },
    "tinynet": {
        "fixed": {
            "model": "tinynet",
            "model_args": {"channels": 16, "blocks": 3},
            "optimizer": "sgd",
            "lr_schedule": "cosine",
        },
        "params": {
            "lr": {"type": "loguniform", "low": 0.003, "high": 0.3},
            "weight_decay": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
            "label_smoothing": {"type": "uniform", "low": 0.0, "high": 0.2},
            "batch_size": {"type": "choice", "values": BATCHES},
            "epochs": {"type": "quniform", "low": 2, "high": 10, "q": 1},
        },
        "data": {"train_subset": 3000, "val_images": 1000, "test_images": 3000, "image_size": 48},
    },
}
CLOCK = "cpu"  # what the seconds column measures ("wall" in tables made before it was recorded)
COLUMNS = ["task", "config_id", "params", "seed", "epoch", "val_acc", "test_acc", "seconds"]


# ------------------------------------------------------------ the sample (pure)


def to_value(p: dict[str, Any], u: float) -> Any:
    """A point u in [0, 1) of one parameter's axis, as the parameter's value."""
    if p["type"] == "choice":
        return p["values"][min(int(u * len(p["values"])), len(p["values"]) - 1)]
    if p["type"] == "loguniform":
        return math.exp(math.log(p["low"]) + u * (math.log(p["high"]) - math.log(p["low"])))
    x = p["low"] + u * (p["high"] - p["low"])
    if p["type"] == "quniform":
        steps = round((p["high"] - p["low"]) / p["q"])
        x = p["low"] + min(int(u * (steps + 1)), steps) * p["q"]
        return int(x) if float(x).is_integer() else x
    return x


def sample(params: dict[str, dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n configurations: a scrambled Sobol sequence over the space (the first n points)."""
    from scipy.stats import qmc

    names = sorted(params)
    points = qmc.Sobol(d=len(names), scramble=True, seed=seed).random(n)
    return [{k: to_value(params[k], float(u)) for k, u in zip(names, row, strict=True)} for row in points]


# ------------------------------------------------------------ one job


_SPLITS = None  # the worker's data, loaded once per process


def _load(task: str, data: str):
    from benchmarks.search_gain import task_data
    from cifar_sweeps.training.data import load_splits, train_subset

    d = TASKS[task]["data"]
    source, size = task_data(task, data)
    pool = load_splits(source, cache_dir(), 0.1, 0, image_size=d["image_size"])
    splits = train_subset(pool, d["train_subset"], 0)
    from cifar_sweeps.training.data import Splits

    val, test = slice(0, d["val_images"]), slice(0, d["test_images"])  # the splits are shuffled: prefixes sample them
    return Splits(
        splits.x_train,
        splits.y_train,
        pool.x_val[val],
        pool.y_val[val],
        pool.x_test[test],
        pool.y_test[test],
        pool.classes,
    )


def _init(task: str, data: str) -> None:
    global _SPLITS
    import torch

    torch.set_num_threads(1)
    _SPLITS = _load(task, data)


def run_job(job: tuple[str, int, dict[str, Any], int]) -> list[dict[str, Any]]:
    """Train one configuration with one seed as a complete run; one row per epoch."""
    from cifar_sweeps.training.train import TrainConfig, Trainer

    task, config_id, params, seed = job
    cfg = TrainConfig(**{**TASKS[task]["fixed"], **params, "seed": seed, "threads": 1, "test_on_best": False})
    trainer = Trainer(cfg, _SPLITS)
    rows = []
    for _ in range(cfg.epochs):
        cpu0 = time.process_time()
        try:
            m = trainer.step_epoch()
        except Exception:  # a diverged run (NaN loss) ends here: its epochs so far are its curve
            break
        cpu_s = time.process_time() - cpu0
        test = trainer.evaluate(trainer.test)[1]
        rows.append(
            {
                "task": task,
                "config_id": config_id,
                "params": json.dumps(params, sort_keys=True),
                "seed": seed,
                "epoch": m.epoch,
                "val_acc": round(m.val_acc, 5),
                "test_acc": round(test, 5),
                # The process's CPU seconds (one torch thread): a wall clock counts whatever else
                # the machine runs; the CPU time of a one-thread run is its wall time on a quiet core.
                "seconds": round(cpu_s, 4),
            }
        )
    return rows


# ------------------------------------------------------------ the run


def hold_lock(path: Path):
    """The table's lock, held for the process's life (the OS lets it go when the process
    ends, however it ends): a second sitting on the same table would train the same runs
    and append them twice. SystemExit naming the holder when another sitting has it."""
    import fcntl

    f = path.open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        raise SystemExit(f"{path.with_suffix('.csv')} is being written by {holder}: wait for it, or stop it") from None
    f.truncate(0)
    f.write(f"pid {os.getpid()}\n")
    f.flush()
    return f


def done_jobs(path: Path) -> set[tuple[int, int]]:
    if not path.exists():
        return set()
    with path.open() as f:
        return {(int(r["config_id"]), int(r["seed"])) for r in csv.DictReader(f)}


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        return "unknown"


def metadata(args: argparse.Namespace, space: dict[str, Any], meta: Path, done: int) -> dict[str, Any]:
    """The table's metadata, with one entry per sitting: a resumed table may have been measured
    on another CPU, and its seconds are that CPU's (the replay's clock says which)."""
    sitting = {"command": " ".join(sys.argv), "commit": commit(), "cpu": cpu_model(), "runs_before": done}
    sittings = json.loads(meta.read_text()).get("sittings", []) if meta.exists() and done else []
    cpus = {s["cpu"] for s in sittings} | {sitting["cpu"]}
    if len(cpus) > 1:
        print(f"note: this table's runs were measured on {len(cpus)} CPUs ({', '.join(sorted(cpus))})", flush=True)
    return {
        "task": args.task,
        "space": space,
        "configs": args.configs,
        "seeds": args.seeds,
        "sample_seed": args.sample_seed,
        "data": Path(args.data).name,
        "workers": args.workers,
        "clock": CLOCK,
        **{k: sitting[k] for k in ("command", "commit", "cpu")},  # the latest sitting's
        "sittings": [*sittings, sitting],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=list(TASKS), required=True)
    p.add_argument("--configs", type=int, default=256, help="configurations sampled (Sobol: a power of 2 is balanced)")
    p.add_argument("--seeds", type=int, default=2, help="training seeds per configuration")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--data", default=default_data())
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "tables")
    args = p.parse_args()
    say_data(args.data)
    model = TASKS[args.task]["fixed"]["model"]
    from cifar_sweeps.sweepspec import registry

    if model not in registry.models():
        raise SystemExit(f"{args.task}: model {model!r} is not installed (pip install -e examples/tinynet-plugin)")
    args.out.mkdir(parents=True, exist_ok=True)
    table, meta = args.out / f"{args.task}.csv", args.out / f"{args.task}.json"
    lock = hold_lock(args.out / f"{args.task}.lock")  # noqa: F841 (held until the process ends)
    space = TASKS[args.task]
    configs = sample(space["params"], args.configs, args.sample_seed)
    done = done_jobs(table)
    meta.write_text(json.dumps(metadata(args, space, meta, len(done)), indent=2) + "\n")
    jobs = [(args.task, i, c, s) for i, c in enumerate(configs) for s in range(args.seeds) if (i, s) not in done]
    print(
        f"{args.task}: {len(configs)} configurations x {args.seeds} seeds; {len(done)} runs done, {len(jobs)} to go "
        f"({args.workers} at a time); {table}",
        flush=True,
    )
    new = not table.exists()
    _load(args.task, args.data)  # decoded and cached here, once: the workers read the cache, and a bad source stops now
    t0, finished = time.perf_counter(), 0
    ctx = multiprocessing.get_context("spawn")
    with table.open("a", newline="") as f, ctx.Pool(args.workers, _init, (args.task, args.data)) as pool:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            w.writeheader()
        for rows in pool.imap_unordered(run_job, jobs):
            w.writerows(rows)
            f.flush()
            finished += 1
            rate = (time.perf_counter() - t0) / finished
            print(f"  {finished}/{len(jobs)} runs, {rate * (len(jobs) - finished) / 60:.0f} min left", flush=True)
    with table.open() as f:
        rows = list(csv.DictReader(f))
    print("---")
    print(
        f"{args.task}: {len({r['config_id'] for r in rows})} configurations, {len(rows)} epochs in {table} "
        f"({table.stat().st_size / 1024:.0f} KiB); this run {(time.perf_counter() - t0) / 60:.1f} min on {cpu_model()}"
    )


if __name__ == "__main__":
    main()
