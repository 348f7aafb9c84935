"""The fast net's training step on this CPU: memory format, threads and torch.compile, each
in fp32 and in bf16 autocast, side by side in one run, at several widths, against the CPU's
fp32 peak.

For each width of `airbench` it times the same training step (SGD with Nesterov momentum,
label smoothing, batch 512 by default) in each variant and precision, alternating them in
every repeat so drift hits all of them alike, and prints the median images/s in fp32 and
in bf16, their ratio, the fp32 ratio to the default variant, the training FLOPs per image
(3x the forward pass's multiply-adds x 2) and the fp32 GFLOP/s as a fraction of the peak:

    peak = cores x clock x FLOPs per cycle per core
    FLOPs per cycle per core = FMA units x fp32 lanes x 2 (AVX-512: 16 lanes; AVX2: 8)

The clock is /proc/cpuinfo's (or --ghz), the FMA units --fma-units (2 on current x86
server cores). Those are stated assumptions, printed with the table, with the CPU's model
and its bf16 flags (amx_bf16, avx512_bf16: without either, bf16 is emulated and slow, and
`precision: auto` trains in fp32).

    python benchmarks/cpu_loop.py --widths 0.25 0.5 0.75 1 --repeats 3
    python benchmarks/cpu_loop.py --whiten     # the method's net: the whitening stem
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cpu_model, print_table  # noqa: E402
from cifar_sweeps.training import precision
from cifar_sweeps.training.models import build_model  # noqa: E402

PRECISIONS = ("fp32", "bf16")

VARIANTS = {  # name: (channels_last, threads (None: all cores), compile)
    "channels_last, all cores (default)": (True, None, False),
    "contiguous (NCHW)": (False, None, False),
    "channels_last, 1 thread": (True, 1, False),
    "channels_last + torch.compile": (True, None, True),
}


def forward_flops(model: nn.Module) -> int:
    """Multiply-adds x 2 of one 32x32 image through the convs and linears."""
    total = 0

    def hook(m: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            total += out[0].numel() * k * 2
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features * 2

    hooks = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    return total


def cpu_peak_gflops(cores: int, ghz: float, fma_units: int) -> tuple[float, int]:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    return cores * ghz * fma_units * lanes * 2, lanes


def cpu_ghz() -> float:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000
    return 0.0


class StepTimer:
    """One variant's model, optimizer and fixed batch; `time(steps)` returns images/s."""

    def __init__(self, width: float, batch: int, channels_last: bool, compile_: bool, bf16: bool, whiten: bool):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.bf16 = bf16
        self.model = build_model("airbench", width=width, whiten=whiten).to(memory_format=fmt).train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2)
        self.forward = torch.compile(self.model) if compile_ else self.model
        self.x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt)
        self.y = torch.randint(0, 10, (batch,))

    def step(self) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.forward(self.x)
        loss = self.loss_fn(out.float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def time(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps * len(self.y) / (time.perf_counter() - t0)


def measure_width(width: float, args: argparse.Namespace, variants: dict) -> dict[tuple[str, str], list[float]]:
    timers, results = {}, {}
    for name, (cl, threads, comp) in variants.items():
        for prec in PRECISIONS:
            torch.set_num_threads(threads or args.cores)
            t0 = time.perf_counter()
            timer = StepTimer(width, args.batch_size, cl, comp, prec == "bf16", args.whiten)
            timer.step()  # warm-up: oneDNN primitive creation, and the compile itself
            timer.step()
            timers[name, prec] = timer
            print(f"  width {width}: {name}, {prec} ready in {time.perf_counter() - t0:.1f} s", flush=True)
            results[name, prec] = []
    for _ in range(args.repeats):
        for (name, prec), timer in timers.items():
            torch.set_num_threads(variants[name][1] or args.cores)
            results[name, prec].append(timer.time(args.steps))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", nargs="+", type=float, default=[0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=6, help="training steps per timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ghz", type=float, default=0.0, help="clock (default: /proc/cpuinfo's)")
    ap.add_argument("--fma-units", type=int, default=2, help="fp32 FMA pipes per core")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    ap.add_argument("--whiten", action="store_true", help="the net with airbench's whitening stem")
    args = ap.parse_args(argv)
    ghz = args.ghz or cpu_ghz()
    peak, lanes = cpu_peak_gflops(args.cores, ghz, args.fma_units)
    variants = {k: v for k, v in VARIANTS.items() if not (args.no_compile and v[2])}
    flags = sorted(set(precision.BF16_FLAGS) & precision.cpu_flags())
    print(
        f"{cpu_model()}; bf16 flags: {', '.join(flags) or 'none (bf16 is emulated here)'}; "
        f"precision auto picks {precision.resolve('auto', 'cpu')[0]}",
        flush=True,
    )
    print(
        f"torch {torch.__version__}; {args.cores} cores at {ghz:.2f} GHz, {args.fma_units} FMA units x "
        f"{lanes} fp32 lanes x 2: fp32 peak {peak:.0f} GFLOP/s; batch {args.batch_size}, "
        f"{args.steps} steps x {args.repeats} repeats (median)",
        flush=True,
    )
    rows = []
    for width in args.widths:
        train_flops = 3 * forward_flops(build_model("airbench", width=width, whiten=args.whiten))
        res = measure_width(width, args, variants)
        base = statistics.median(res[next(iter(variants)), "fp32"])
        for name in variants:
            fp32, bf16 = (statistics.median(res[name, p]) for p in PRECISIONS)
            gflops = fp32 * train_flops / 1e9
            rows.append(
                [
                    width,
                    name,
                    f"{train_flops / 1e6:.0f}",
                    round(fp32),
                    round(bf16),
                    f"{bf16 / fp32:.2f}",
                    f"{fp32 / base:.2f}",
                    round(gflops),
                    f"{gflops / peak:.0%}",
                ]
            )
    print()
    headers = ["width", "variant", "train MFLOP/img", "fp32 img/s", "bf16 img/s", "bf16/fp32"]
    print_table([*headers, "fp32 vs default", "fp32 GFLOP/s", "of fp32 peak"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
