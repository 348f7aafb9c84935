"""How much the data's JPEG encoding costs: the same training run on the images as they are,
then on the same images re-encoded as JPEG at lower qualities (4:2:0 colour, as the
archive is), train, validation and test alike, one after the other in one run.

The real archive is CIFAR-10 at quality 75 already, so this cannot show what quality 75
cost against the original PNGs; it shows how steeply accuracy falls with quality from
there, the closest this machine can come to that question offline.

    python benchmarks/jpeg_quality.py                           # as is, 50; width 0.5, 10 epochs
    python benchmarks/jpeg_quality.py --qualities 50 30 --width 1 --epochs 16
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cache_dir, default_data, print_table, say_data  # noqa: E402


def reencode(x: np.ndarray, quality: int) -> np.ndarray:
    """NHWC uint8 images through a JPEG round trip at `quality` (4:2:0 chroma)."""
    from PIL import Image

    out = np.empty_like(x)
    for i, img in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality, subsampling=2)
        out[i] = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out


def at_quality(splits, quality: int):
    return dataclasses.replace(
        splits,
        x_train=reencode(splits.x_train, quality),
        x_val=reencode(splits.x_val, quality),
        x_test=reencode(splits.x_test, quality),
    )


def recipe(name: str, width: float, epochs: int, seed: int, threads: int) -> dict:
    """The preset's fixed config and first point (what `cifar-sweeps train --recipe` takes)."""
    from cifar_sweeps.sweepspec.presets import read
    from cifar_sweeps.sweepspec.schema import parse_spec

    spec = parse_spec(read(name))
    points = spec.search.points_to_evaluate
    cfg = {**spec.fixed, **(points[0] if points else {})}
    return {**cfg, "width": width, "epochs": epochs, "seed": seed, "threads": threads}


def run(cfg: dict, splits) -> tuple[float, float, float]:
    """(test accuracy of the best-validation weights, best validation, minutes)."""
    from cifar_sweeps.training.train import TrainConfig, Trainer

    t0 = time.perf_counter()
    result = Trainer(TrainConfig(**cfg), splits).run(
        lambda m, _t: print(f"    epoch {m.epoch:2d}  val {m.val_acc:.4f}  {m.seconds:.0f} s", flush=True)
    )
    return result.test_acc, result.best_val_acc, (time.perf_counter() - t0) / 60


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data(), help="data source (default: the real archive)")
    ap.add_argument("--recipe", default="cpu-fast", help="the preset whose training recipe runs")
    ap.add_argument("--qualities", type=int, nargs="+", default=[50], help="JPEG qualities to re-encode at")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    say_data(args.data)

    import torch

    from cifar_sweeps.training.data import load_splits

    torch.set_num_threads(args.threads)
    splits = load_splits(args.data, cache_dir(), 0.1, 0)
    cfg = recipe(args.recipe, args.width, args.epochs, args.seed, args.threads)
    print(f"{args.recipe}'s recipe, width {args.width}, {args.epochs} epochs, seed {args.seed}; {splits.sizes}")
    table = []
    for quality in [None, *args.qualities]:
        name = "as is" if quality is None else f"re-encoded at {quality}"
        print(f"  {name}", flush=True)
        data = splits if quality is None else at_quality(splits, quality)
        test, val, minutes = run(cfg, data)
        table.append([name, f"{test:.2%}", f"{val:.2%}", f"{minutes:.1f}"])
    print()
    print_table(["images", "test", "best val", "min"], table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
