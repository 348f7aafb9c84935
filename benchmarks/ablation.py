"""airbench's ablation on this CPU: its training method's parts added one at a time, in
airbench's order (KellerJordan/cifar10-zoo, airbench_ablations), each row one training run
of `cifar-sweeps train`'s loop on the real CIFAR-10, one after the other in one run.

    0 baseline     the airbench-style net, Nesterov SGD (momentum 0.85), the linear lr
                   schedule, label smoothing 0.2, flip + 2-pixel crops, mirror TTA,
                   BatchNorm scales fixed at 1 and running-stats momentum 0.4
    1 + whiten     the frozen patch-whitening first layer (its bias trained throughout)
    2 + dirac      identity-initialized 3x3 convs
    3 + bn bias lr BatchNorm biases at 64x the lr
    4 + freeze     the whitening bias frozen after 3 epochs
    5 + lookahead  the EMA pull every 5 steps
    6 + tta 2      6-view test-time augmentation
    7 + alt flip   alternating flip

For each row: the test accuracy of the best-validation weights, the best validation
accuracy, and the first epoch (and minute) at which validation reached --target. Every
row has the same seed, width, epochs, batch and lr (--width, --epochs: the defaults make
the whole table about 40 minutes on 2 cores of a CPU with bf16).

    python benchmarks/ablation.py                        # 8 rows, width 0.5, 8 epochs
    python benchmarks/ablation.py --width 1 --epochs 12 --target 0.93
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cache_dir, default_data, print_table, say_data  # noqa: E402

BASELINE = {
    "model": "airbench",
    "optimizer": "sgd",
    "momentum": 0.85,
    "nesterov": True,
    "lr_schedule": "linear",
    "batch_size": 1024,
    "lr": 1.5,
    "weight_decay": 0.00133,
    "label_smoothing": 0.2,
    "flip": True,
    "crop_padding": 2,
    "tta": 1,
    "freeze_bn_weight": True,
    "bn_momentum": 0.4,
    "test_on_best": False,  # the test split once, at the end, on the best-validation weights
}
# (row name, the fields it adds); each row keeps the rows above it.
STEPS: list[tuple[str, dict]] = [
    ("baseline", {}),
    ("+ whiten", {"whiten": True, "whiten_bias_epochs": 1000}),
    ("+ dirac", {"dirac": True}),
    ("+ bn bias lr 64", {"bn_bias_lr": 64.0}),
    ("+ freeze whiten bias", {"whiten_bias_epochs": 3}),
    ("+ lookahead", {"lookahead": True}),
    ("+ tta 2", {"tta": 2}),
    ("+ alternating flip", {"alternate_flip": True}),
]


def rows_config(width: float, epochs: int, seed: int, threads: int) -> list[tuple[str, dict]]:
    cfg = {**BASELINE, "width": width, "epochs": epochs, "seed": seed, "threads": threads}
    out = []
    for name, added in STEPS:
        cfg = {**cfg, **added}
        out.append((name, dict(cfg)))
    return out


def run_row(cfg: dict, splits, target: float) -> dict:
    from cifar_sweeps.training.train import TrainConfig, Trainer

    t0 = time.perf_counter()
    trainer = Trainer(TrainConfig(**cfg), splits)
    reached: tuple[int, float] | None = None

    def on_epoch(m, _t) -> None:
        nonlocal reached
        if reached is None and m.val_acc >= target:
            reached = (m.epoch, time.perf_counter() - t0)
        print(f"    epoch {m.epoch:2d}  val {m.val_acc:.4f}  {m.seconds:.0f} s", flush=True)

    result = trainer.run(on_epoch)
    return {
        "test": result.test_acc,
        "val": result.best_val_acc,
        "reached": reached,
        "minutes": (time.perf_counter() - t0) / 60,
        "precision": trainer.precision,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data(), help="data source (default: the real archive)")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--target", type=float, default=0.85, help="the validation accuracy timed to")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=len(STEPS), help="the first N rows only")
    args = ap.parse_args(argv)
    say_data(args.data)

    import torch

    from cifar_sweeps.training.data import load_splits

    torch.set_num_threads(args.threads)
    splits = load_splits(args.data, cache_dir(), 0.1, 0)
    print(f"width {args.width}, {args.epochs} epochs, seed {args.seed}, {args.threads} threads; {splits.sizes}")
    table = []
    for name, cfg in rows_config(args.width, args.epochs, args.seed, args.threads)[: args.rows]:
        print(f"  {name}", flush=True)
        r = run_row(cfg, splits, args.target)
        epoch, at = r["reached"] or (None, None)
        table.append(
            [
                name,
                f"{r['test']:.2%}",
                f"{r['val']:.2%}",
                "not reached" if epoch is None else str(epoch),
                "-" if at is None else f"{at / 60:.1f}",
                f"{r['minutes']:.1f}",
                r["precision"],
            ]
        )
    print()
    print_table(["row", "test", "best val", f"epoch to val {args.target:.0%}", "min to it", "min", "precision"], table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
