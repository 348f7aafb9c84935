"""Input pipeline speed: the report's loader vs this project's loop vs pure compute.

Side by side in one run, on the same model, batch size and images:
  (a) report:  PIL images -> RandomHorizontalFlip + ToTensor + Normalize, DataLoader with
               SubsetRandomSampler and num_workers=2 (the report's code);
  (b) project: cifar_sweeps' training loop (uint8 tensor batches, flip on the tensor);
  (c) compute: the same model stepping on pre-normalized tensors, no augmentation, no loader.
Each is timed over the same number of training images, repeated, and the median reported.

    python benchmarks/pipeline.py --models mlp simple_cnn --images 8192 --repeats 3
    python benchmarks/pipeline.py --models airbench --width 0.5 --batch-size 512 --crop-padding 2 --skip-report
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cache_dir, default_data, median, print_table, say_data  # noqa: E402
from cifar_sweeps.training.data import Splits, load_splits  # noqa: E402
from cifar_sweeps.training.models import build_model  # noqa: E402
from cifar_sweeps.training.train import TrainConfig, Trainer, memory_format_for  # noqa: E402


class ReportDataset(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10's __getitem__: a PIL image through the transforms."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def _step_fn(model: torch.nn.Module):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return step


def time_report(model_name: str, x: np.ndarray, y: np.ndarray, bs: int, workers: int, width: float = 1.0) -> float:
    import torchvision.transforms as T

    tf = T.Compose([T.RandomHorizontalFlip(0.5), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = ReportDataset(x, y, tf)
    sampler = torch.utils.data.SubsetRandomSampler(np.arange(len(y)))
    loader = torch.utils.data.DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=workers)
    model = build_model(model_name, width=width).train()
    step = _step_fn(model)
    t0 = time.perf_counter()
    n = 0
    for xb, yb in loader:
        step(xb, yb)
        n += len(yb)
    return n / (time.perf_counter() - t0)


def time_project(
    model_name: str, x: np.ndarray, y: np.ndarray, bs: int, threads: int, width: float = 1.0, crop_padding: int = 0
) -> float:
    splits = Splits(x, y, x[:bs], y[:bs], x[:bs], y[:bs])
    cfg = TrainConfig(
        model=model_name,
        batch_size=bs,
        epochs=1,
        lr=0.01,
        threads=threads,
        device="cpu",
        width=width,
        crop_padding=crop_padding,
    )
    trainer = Trainer(cfg, splits)
    t0 = time.perf_counter()
    trainer.train_epoch()
    return len(y) / (time.perf_counter() - t0)


def time_compute(model_name: str, x: np.ndarray, y: np.ndarray, bs: int, width: float = 1.0) -> float:
    """Pure compute in the layout the project's loop uses for this model (so b/c is the
    cost of the input pipeline alone)."""
    fmt = memory_format_for(TrainConfig(model=model_name))
    xs = ((torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255) - 0.5) / 0.5
    xs = xs.contiguous(memory_format=fmt)
    ys = torch.from_numpy(y)
    model = build_model(model_name, width=width).to(memory_format=fmt).train()
    step = _step_fn(model)
    t0 = time.perf_counter()
    for i in range(0, len(ys), bs):
        step(xs[i : i + bs], ys[i : i + bs])
    return len(ys) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data(), help="data source (default: the real archive)")
    ap.add_argument("--models", nargs="+", default=["mlp", "simple_cnn"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--images", type=int, default=8192, help="training images per timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the report's pipeline")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--width", type=float, default=1.0, help="width of a scalable model (airbench)")
    ap.add_argument("--crop-padding", type=int, default=0, help="the loop's random-crop padding (cpu-fast: 2)")
    ap.add_argument("--skip-report", action="store_true", help="leave the report's DataLoader out")
    args = ap.parse_args(argv)
    say_data(args.data)

    torch.set_num_threads(args.threads)
    splits = load_splits(args.data, cache_dir())
    n = min(args.images, len(splits.y_train))
    x, y = splits.x_train[:n], splits.y_train[:n]
    print(
        f"data {args.data}: {n} training images, batch {args.batch_size}, {args.threads} threads, "
        f"{args.repeats} repeats (median)",
        flush=True,
    )
    rows = []
    for name in args.models:
        a, b, c = [], [], []
        w = args.width
        time_compute(name, x[: args.batch_size * 4], y[: args.batch_size * 4], args.batch_size, w)  # warm-up
        for r in range(args.repeats):
            a.append(float("nan") if args.skip_report else time_report(name, x, y, args.batch_size, args.workers, w))
            b.append(time_project(name, x, y, args.batch_size, args.threads, w, args.crop_padding))
            c.append(time_compute(name, x, y, args.batch_size, w))
            print(
                f"  {name} repeat {r + 1}: report {a[-1]:.0f}  project {b[-1]:.0f}  compute {c[-1]:.0f} img/s",
                flush=True,
            )
        ma, mb, mc = median(a), median(b), median(c)
        rows.append([name, ma, mb, mc, mb / ma, mb / mc])
    print()
    print_table(["model", "report img/s", "project img/s", "compute img/s", "project/report", "project/compute"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
