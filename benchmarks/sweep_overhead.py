"""Ray Tune's overhead: the same fixed trial configs run (a) as a Tune sweep through this
project's runner and (b) as a bare loop of the training function, with the same
concurrency and threads per trial, on the CPU.

    python benchmarks/sweep_overhead.py --trials 4 --concurrency 2 --epochs 3 --repeats 2

Prints the wall time of each, the ratio a/b, Ray's start time and its time to the first
reported epoch. Checkpoints are written every epoch in (a), as a sweep does by default.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cache_dir, default_data, fit_sweep, median, print_table, say_data  # noqa: E402
from cifar_sweeps.training.data import Splits, load_splits  # noqa: E402


def subset(s: Splits, n_train: int, n_eval: int) -> Splits:
    return Splits(
        s.x_train[:n_train],
        s.y_train[:n_train],
        s.x_val[:n_eval],
        s.y_val[:n_eval],
        s.x_test[:n_eval],
        s.y_test[:n_eval],
    )


def trial_configs(args) -> tuple[dict, list[float]]:
    base = {"model": args.model, "epochs": args.epochs, "batch_size": args.batch_size, "optimizer": "sgd"}
    lrs = [round(0.005 * (i + 1), 4) for i in range(args.trials)]
    return base, lrs


def _bare_one(job) -> float:
    import torch

    from cifar_sweeps.training.train import TrainConfig, fit

    cfg, splits, threads = job
    torch.set_num_threads(threads)
    return fit(TrainConfig(**cfg, threads=threads, device="cpu"), splits).best_val_acc


def run_bare(base: dict, lrs: list[float], splits: Splits, concurrency: int, threads: int) -> float:
    jobs = [({**base, "lr": lr}, splits, threads) for lr in lrs]
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(concurrency) as pool:
        pool.map(_bare_one, jobs, chunksize=1)
    return time.perf_counter() - t0


def run_tune(base: dict, lrs: list[float], splits: Splits, concurrency: int, threads: int) -> tuple[float, float]:
    from ray.tune import Callback

    from cifar_sweeps.sweepspec.schema import parse_spec

    class FirstResult(Callback):
        first: float | None = None

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if FirstResult.first is None:
                FirstResult.first = time.perf_counter()

    spec = parse_spec(
        {
            "name": "overhead",
            "num_samples": 1,
            "max_concurrent_trials": concurrency,
            "search": {"algorithm": "grid"},
            "scheduler": {"type": "fifo"},
            "resources_per_trial": {"cpu": threads},
            "fixed": base,
            "params": {"lr": {"type": "choice", "values": lrs}},
        }
    )
    t0 = time.perf_counter()
    _, wall = fit_sweep(spec, splits, [FirstResult()])
    return wall, (FirstResult.first or t0) - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--model", default="simple_cnn")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (= Ray CPUs) per trial")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-images", type=int, default=6000)
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    say_data(args.data)

    import ray

    splits = subset(load_splits(args.data, cache_dir()), args.train_images, args.eval_images)
    base, lrs = trial_configs(args)
    t0 = time.perf_counter()
    ray.init(
        num_cpus=args.concurrency * args.threads, include_dashboard=False, logging_level="ERROR", log_to_driver=False
    )
    ray_start = time.perf_counter() - t0
    print(
        f"{args.trials} trials of {args.model}, {args.epochs} epochs on {args.train_images} images, "
        f"concurrency {args.concurrency}, {args.threads} thread(s) each; Ray started in {ray_start:.1f}s",
        flush=True,
    )
    bare, tune, first = [], [], []
    for r in range(args.repeats):
        bare.append(run_bare(base, lrs, splits, args.concurrency, args.threads))
        w, f = run_tune(base, lrs, splits, args.concurrency, args.threads)
        tune.append(w)
        first.append(f)
        print(f"  repeat {r + 1}: tune {w:.1f}s  bare {bare[-1]:.1f}s  first epoch after {f:.1f}s", flush=True)
    ray.shutdown()
    mb, mt = median(bare), median(tune)
    print()
    print_table(
        ["trials", "trial s (bare)", "tune wall s", "bare wall s", "tune/bare", "first epoch s", "ray start s"],
        [[args.trials, mb * args.concurrency / args.trials, mt, mb, mt / mb, median(first), ray_start]],
    )
    print("target: tune/bare <= 1.15 for trials of about 30 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
