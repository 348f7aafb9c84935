"""Time to accuracy on this machine: a preset's sweep, the previous CPU recipe's sweep and
the report's recipe, one after the other in one run, on the real CIFAR-10.

  (a) the preset (default `cpu-fast`): the whole sweep through the project's Tuner (Ray
      started, the data put in the object store, trials, ASHA), its clock started before
      Ray; the time budget is the preset's own `time_budget_s`, set to --minutes;
  (b) the previous recipe: `cpu-fast` as it was before airbench's method (the airbench-style
      net with a generic recipe; benchmarks/specs/cpu-fast-previous.json), likewise, under
      --baseline-minutes;
  (c) the report's best CPU-trainable recipe, as in the README's "Reproducing the report":
      `simple_cnn`, SGD lr 0.02 momentum 0.9, batch 32, inputs scaled to [-1, 1], flip,
      its 50 epochs (--baseline-epochs), on every core, cut at --baseline-minutes.

At any moment, a run's "best model" is the one the leaderboard would rank first: the
best validation accuracy seen so far whose weights were tested (a trial tests its best
weights at ASHA's rungs and its last epoch; the report's run, each new best). The table
gives that test accuracy at 10/20/40/60 minutes (scaled to --minutes) and the first time
it reached 86, 90, 93 and 94 %.

    python benchmarks/time_to_accuracy.py --baseline-minutes 20   # 60 + 20 + 20 minutes
    python benchmarks/time_to_accuracy.py --minutes 5 --data synthetic:2000   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cache_dir, default_data, fit_sweep, print_table, say_data  # noqa: E402

THRESHOLDS = (0.86, 0.90, 0.93, 0.94)
PREVIOUS = Path(__file__).resolve().parent / "specs" / "cpu-fast-previous.json"
CHECKPOINTS = (10 / 60, 20 / 60, 40 / 60, 1.0)  # fractions of the budget (10/20/40/60 of 60 min)


@dataclass
class Curve:
    """(seconds since the run's start, val of the best model, its test) at each improvement."""

    points: list[tuple[float, float, float]] = field(default_factory=list)
    best_val: float = -1.0

    def offer(self, t: float, val: float, test: float | None) -> None:
        if test is not None and val > self.best_val:
            self.best_val = val
            self.points.append((t, val, test))

    def test_at(self, t: float) -> float | None:
        seen = [p[2] for p in self.points if p[0] <= t]
        return seen[-1] if seen else None

    def time_to(self, acc: float) -> float | None:
        return next((p[0] for p in self.points if p[2] >= acc), None)


def run_preset(name: str, data: str, budget_s: float, curve: Curve) -> str:
    """A preset's sweep (or a spec file's), with its time budget set to `budget_s`; returns
    a summary line."""
    from ray.tune import Callback

    from cifar_sweeps.cluster.connection import init_ray
    from cifar_sweeps.sweepspec import presets
    from cifar_sweeps.sweepspec.schema import SweepSpec
    from cifar_sweeps.training.data import load_splits, train_subset

    raw = json.loads(presets.spec_text(name))
    raw["time_budget_s"] = budget_s
    spec = SweepSpec.model_validate(raw)
    t0 = time.perf_counter()
    init_ray()  # as `cifar-sweeps run` starts it: a local runtime, no token file left behind
    splits = load_splits(data, cache_dir(), spec.data.val_fraction, spec.data.split_seed)
    splits = train_subset(splits, spec.data.train_subset, spec.data.split_seed)

    class Record(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            curve.offer(time.perf_counter() - t0, result["best_val_acc"], result.get("test_acc"))
            print(
                f"  {time.perf_counter() - t0:7.0f} s  {trial.trial_id} epoch {result['epoch']:2d}  "
                f"val {result['val_acc']:.4f}  best model: val {curve.best_val:.4f} "
                f"test {curve.points[-1][2] if curve.points else float('nan'):.4f}",
                flush=True,
            )

    trials, wall = fit_sweep(spec, splits, callbacks=[Record()])
    epochs = sum(t.epochs or 0 for t in trials)
    import ray

    ray.shutdown()  # the next run starts its own runtime, as a user's next command would
    return f"{spec.name or name}: {len(trials)} trials, {epochs} trial-epochs, sweep wall {wall / 60:.1f} min"


def run_report(data: str, epochs: int, budget_s: float, threads: int, curve: Curve) -> str:
    """The report's recipe as one training run, stopped at the budget; returns a summary."""
    import torch

    from cifar_sweeps.training.data import load_splits
    from cifar_sweeps.training.train import TrainConfig, Trainer

    t0 = time.perf_counter()
    cfg = TrainConfig(
        model="simple_cnn",
        optimizer="sgd",
        lr=0.02,
        momentum=0.9,
        batch_size=32,
        epochs=epochs,
        normalize="report",
        flip=True,
        threads=threads,
        device="cpu",
    )
    torch.set_num_threads(threads)
    trainer = Trainer(cfg, load_splits(data, cache_dir(), 0.2, 0))
    while trainer.epoch < cfg.epochs and time.perf_counter() - t0 < budget_s:
        m = trainer.step_epoch()
        curve.offer(time.perf_counter() - t0, m.best_val_acc, m.test_acc)
        print(
            f"  {time.perf_counter() - t0:7.0f} s  simple_cnn epoch {m.epoch:2d}  val {m.val_acc:.4f}  "
            f"best model: val {m.best_val_acc:.4f} test {m.test_acc:.4f}",
            flush=True,
        )
    return f"report recipe: {trainer.epoch} of {epochs} epochs in {(time.perf_counter() - t0) / 60:.1f} min"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _mins(s: float | None) -> str:
    return "not reached" if s is None else f"{s / 60:.1f} min"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data(), help="data source (default: the real archive)")
    ap.add_argument("--preset", default="cpu-fast")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of the preset's sweep")
    ap.add_argument("--baseline-minutes", type=float, help="budget of each baseline (default: --minutes)")
    ap.add_argument("--baseline-epochs", type=int, default=50, help="the report's recipe's epochs")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the report's recipe")
    ap.add_argument("--skip-previous", action="store_true", help="leave the previous recipe out")
    ap.add_argument("--skip-report", action="store_true", help="leave the report's recipe out")
    args = ap.parse_args(argv)
    budget = args.minutes * 60
    base_budget = (args.baseline_minutes or args.minutes) * 60
    say_data(args.data)
    print(f"budget {args.minutes:g} min for {args.preset}, {base_budget / 60:g} min for each baseline", flush=True)
    runs: list[tuple[str, Curve, str]] = []
    print(f"(a) the {args.preset} sweep", flush=True)
    curve = Curve()
    runs.append((f"{args.preset} sweep", curve, run_preset(args.preset, args.data, budget, curve)))
    if not args.skip_previous:
        print("(b) the previous recipe's sweep (cpu-fast-previous)", flush=True)
        curve = Curve()
        runs.append(("previous cpu-fast sweep", curve, run_preset(str(PREVIOUS), args.data, base_budget, curve)))
    if not args.skip_report:
        print("(c) the report's recipe (simple_cnn)", flush=True)
        curve = Curve()
        runs.append(
            (
                "report's simple_cnn",
                curve,
                run_report(args.data, args.baseline_epochs, base_budget, args.threads, curve),
            )
        )
    print()
    for _, _, summary in runs:
        print(summary)
    marks = [f * budget for f in CHECKPOINTS]
    headers = ["run", *(f"test @{m / 60:g} min" for m in marks), *(f"to {a:.0%}" for a in THRESHOLDS)]
    rows = [
        [name, *(_pct(c.test_at(m)) for m in marks), *(_mins(c.time_to(a)) for a in THRESHOLDS)] for name, c, _ in runs
    ]
    print()
    print_table(headers, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
