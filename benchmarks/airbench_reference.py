"""airbench94's training loop on a CPU, written on its own (not with this project's Trainer),
so that "the presets train with airbench's method at parity with its own loop" can be checked
on any archive: its net, whitening, schedule, lookahead, alternating flips, crops, label
smoothing and test-time augmentation, with airbench94.py's hyperparameters, trained on all
50,000 training images for 9.9 epochs and tested once on the 10,000 test images.

    python benchmarks/airbench_reference.py --data ../shared/data/cifar10-png.tar.xz
    python benchmarks/airbench_reference.py --data ../shared/data/cifar10-jpeg.tar.xz --precision fp32

Beside it, the preset's method at the same length on the same images:

    cifar-sweeps train --recipe cpu-fast --epochs 10 --val-fraction 0 --data ARCHIVE --test-at-end

How this port differs from KellerJordan/cifar10-airbench's airbench94.py (the loop is the
same; where it runs is not):
- the device: a CPU, with `torch.set_num_threads(--threads)`; no CUDA events (wall time by
  time.perf_counter), no cudnn.benchmark, no warm-up run;
- precision: the net in fp32 with bf16 autocast (`--precision bf16`, the default where the
  CPU has it) or plain fp32, where the original keeps the net in fp16 and BatchNorm in fp32;
- data: any archive this project reads (its decoder and cache), normalized by CIFAR-10's
  mean and std as the original does; the original downloads CIFAR-10 with torchvision;
- one run per call (`--seed`), where the original averages 25; per-epoch test accuracy is
  printed without TTA and the final one with TTA level 2 (6 views), as the original does;
- random numbers from one seeded torch.Generator (flips, crops, order), so a run repeats.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cache_dir, cpu_model, default_data, say_data  # noqa: E402
from cifar_sweeps.training.data import load_cifar  # noqa: E402

# airbench94.py's hyperparameters, in its decoupled form (per 1024 examples).
EPOCHS, BATCH, LR, MOMENTUM, WD = 9.9, 1024, 11.5, 0.85, 0.0153
BIAS_SCALER, LABEL_SMOOTHING, WHITEN_BIAS_EPOCHS = 64.0, 0.2, 3
EMA_START_EPOCHS, EMA_BASE, EMA_POW, EMA_EVERY = 3, 0.95, 3.0, 5
BN_MOMENTUM, WIDTHS, SCALE = 0.6, (64, 256, 256), 1 / 9
MEAN, STD = torch.tensor((0.4914, 0.4822, 0.4465)), torch.tensor((0.2470, 0.2435, 0.2616))


def bn(c: int) -> nn.BatchNorm2d:
    """BatchNorm with fixed scales (no weight learned), a learned bias and a momentum of 0.6."""
    m = nn.BatchNorm2d(c, eps=1e-12, momentum=1 - BN_MOMENTUM)
    m.weight.requires_grad_(False)
    return m


def conv(cin: int, cout: int, k: int = 3, pad: str | int = "same", bias: bool = False) -> nn.Conv2d:
    """A conv identity-initialized in its first cin output channels (an implicit residual)."""
    c = nn.Conv2d(cin, cout, k, padding=pad, bias=bias)
    with torch.no_grad():
        nn.init.dirac_(c.weight[:cin])
        if bias:
            c.bias.zero_()
    return c


class Group(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.norm1 = conv(cin, cout), bn(cout)
        self.conv2, self.norm2 = conv(cout, cout), bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


def make_net() -> nn.Sequential:
    whiten = conv(3, 24, k=2, pad=0, bias=True)  # 2 x 3 x 2 x 2 channels: the patches' +/- whitening
    whiten.weight.requires_grad_(False)
    net = nn.Sequential(
        whiten,
        nn.GELU(),
        Group(24, WIDTHS[0]),
        Group(WIDTHS[0], WIDTHS[1]),
        Group(WIDTHS[1], WIDTHS[2]),
        nn.MaxPool2d(3),
        nn.Flatten(),
        nn.Linear(WIDTHS[2], 10, bias=False),
    )
    return net.to(memory_format=torch.channels_last)


def logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net(x).float() * SCALE


def fit_whitening(layer: nn.Conv2d, x: torch.Tensor, eps: float = 5e-4) -> None:
    """The first conv as the whitening of 2x2 patches of the first 5,000 images (and its negative)."""
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3, 2, 2).float()
    flat = patches.view(len(patches), -1)
    vals, vecs = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
    vals, vecs = vals.flip(0).view(-1, 1, 1, 1), vecs.T.reshape(12, 3, 2, 2).flip(0)
    scaled = vecs / torch.sqrt(vals + eps)
    with torch.no_grad():
        layer.weight.copy_(torch.cat((scaled, -scaled)))


def triangle(steps: int, start: float = 0.2, end: float = 0.07, peak: float = 0.23) -> list[float]:
    """The lr factor per step: up from `start` to 1 at `peak` of the steps, down to `end`."""
    top = int(peak * steps)
    return [
        start + (1 - start) * i / top if i < top else 1 + (end - 1) * (i - top) / (steps - top)
        for i in range(steps + 1)
    ]


def crops(padded: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Each image translated by up to 2 pixels each way (a crop of its reflect-padded copy)."""
    r = (padded.shape[-1] - size) // 2
    shifts = torch.randint(0, 2 * r + 1, (len(padded), 2), generator=gen)
    out = torch.empty(len(padded), 3, size, size, dtype=padded.dtype)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            idx = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().squeeze(1)
            out[idx] = padded[idx, :, dy : dy + size, dx : dx + size]
    return out


def tta(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Level 2: the image and its mirror, and both shifted one pixel up-left and down-right."""

    def mirror(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * logits(net, v) + 0.5 * logits(net, v.flip(-1))

    padded = F.pad(x, (1,) * 4, "reflect")
    shifted = 0.5 * mirror(padded[:, :, :32, :32]) + 0.5 * mirror(padded[:, :, 2:, 2:])
    return 0.5 * mirror(x) + 0.5 * shifted


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool, with_tta: bool) -> float:
    net.eval()
    hits = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for xb, yb in zip(x.split(1000), y.split(1000), strict=True):
            out = tta(net, xb) if with_tta else logits(net, xb)
            hits += int((out.argmax(1) == yb).sum())
    return hits / len(y)


def run(x_train, y_train, x_test, y_test, seed: int, bf16: bool) -> dict[str, float]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = make_net()
    fit_whitening(net[0], x_train[:5000])
    kilostep = 1024 * (1 + 1 / (1 - MOMENTUM))  # the decoupled lr and wd, undone for torch's SGD
    lr, wd = LR / kilostep, WD * BATCH / kilostep
    norm_biases = [p for n, p in net.named_parameters() if "norm" in n and p.requires_grad]
    others = [p for n, p in net.named_parameters() if "norm" not in n and p.requires_grad]
    opt = torch.optim.SGD(
        [
            dict(params=norm_biases, lr=lr * BIAS_SCALER, weight_decay=wd / (lr * BIAS_SCALER)),
            dict(params=others, lr=lr, weight_decay=wd / lr),
        ],
        momentum=MOMENTUM,
        nesterov=True,
    )
    steps_per_epoch = len(x_train) // BATCH  # the original drops the last partial batch
    total = math.ceil(steps_per_epoch * EPOCHS)
    factors = triangle(total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: factors[min(i, total)])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING, reduction="none")
    flipped = torch.where((torch.rand(len(x_train), generator=gen) < 0.5).view(-1, 1, 1, 1), x_train.flip(-1), x_train)
    padded = F.pad(flipped, (2,) * 4, "reflect")
    ema, step, train_s = None, 0, 0.0  # training seconds: the per-epoch tests don't count, as there
    for epoch in range(math.ceil(EPOCHS)):
        t0 = time.perf_counter()
        net[0].bias.requires_grad_(epoch < WHITEN_BIAS_EPOCHS)
        net.train()
        images = crops(padded, 32, gen)
        if epoch % 2 == 1:  # every other epoch, every image mirrored: the alternating flip
            images = images.flip(-1)
        order = torch.randperm(len(images), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * BATCH : (i + 1) * BATCH]
            xb = images[idx].contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(logits(net, xb), y_train[idx]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if epoch >= EMA_START_EPOCHS and step % EMA_EVERY == 0:
                ema = _lookahead(net, ema, EMA_BASE**EMA_EVERY * (step / total) ** EMA_POW)
            if step >= total:
                break
        if ema is not None:
            _lookahead(net, ema, 1.0)  # the weights become the average at each epoch's end
        train_s += time.perf_counter() - t0
        test = accuracy(net, x_test, y_test, bf16, False)
        print(f"  epoch {epoch + 1:2d}  test {test:.4f}  training {train_s:7.1f} s", flush=True)
    return {"tta_test": accuracy(net, x_test, y_test, bf16, True), "train_s": train_s}


def _lookahead(net: nn.Module, ema: dict | None, decay: float) -> dict:
    """The first call keeps a copy; each later one pulls it toward the weights by 1 - decay and
    copies it back (float tensors of the state: BatchNorm's running statistics too)."""
    state = {k: v for k, v in net.state_dict().items() if v.is_floating_point()}
    if ema is None:
        return {k: v.detach().clone() for k, v in state.items()}
    with torch.no_grad():
        for k, v in state.items():
            ema[k].lerp_(v, 1 - decay)
            v.copy_(ema[k])
    return ema


def tensors(data: str, train_limit: int | None) -> tuple[torch.Tensor, ...]:
    d = load_cifar(data, cache_dir=cache_dir())

    def norm(x) -> torch.Tensor:
        t = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
        return ((t - MEAN.view(1, 3, 1, 1)) / STD.view(1, 3, 1, 1)).contiguous(memory_format=torch.channels_last)

    n = train_limit or len(d.y_train)
    return norm(d.x_train[:n]), torch.from_numpy(d.y_train[:n]), norm(d.x_test), torch.from_numpy(d.y_test)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=default_data())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--train-limit", type=int, help="train on the first N images only (a smoke run)")
    a = p.parse_args()
    say_data(a.data)
    torch.set_num_threads(a.threads)
    x_train, y_train, x_test, y_test = tensors(a.data, a.train_limit)
    print(
        f"airbench94's loop: {len(y_train)} training images, {EPOCHS} epochs, batch {BATCH}, {a.precision}", flush=True
    )
    r = run(x_train, y_train, x_test, y_test, a.seed, a.precision == "bf16")
    print(
        f"test accuracy with TTA: {r['tta_test']:.4f}; training {r['train_s'] / 60:.1f} min "
        f"({a.threads} threads, {a.precision}) on {cpu_model()}; data {Path(a.data).name}"
    )


if __name__ == "__main__":
    main()
