"""The GPU check: every GPU claim of the project in one short run (under 5 minutes on one
H100/H200), on real CIFAR-10, in three parts (`--only tests|sweep|resnet` reruns one):

(1) tests: forward and backward of every zoo model on the device, in bf16 autocast and
    channels_last; a trial's state saved and restored on the device (the restored run
    continues where the first left off);
(2) sweep: the gpu-airbench preset as it is (four trials share the card, 300 s budget),
    in this process's own Ray runtime: wall time, best test accuracy, the card's memory
    and utilisation while the trials share it;
(3) resnet: ResNet-50 from scratch at batch 128, this project's loop (uint8 data resident
    on the GPU, bf16, channels_last) against the report's (PIL + DataLoader, fp32), images/s
    over the same timed batches.

It runs with only what such a machine has: Python and PyTorch, the bundle of
../shared/device/ (Ray, HyperOpt, Optuna and friends: benchmarks/gpu_check.sh), the
project from its checkout (`python -m cifar_sweeps`, no console script). Full logs go to
--log-dir; a short table closes the run.

    bash benchmarks/gpu_check.sh                        # on the GPU machine
    python benchmarks/gpu_sweep.py --cpu-smoke          # the same, tiny, on a CPU (a test runs it)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ROOT, cache_dir, default_data, print_table, say_data  # noqa: E402
from benchmarks.pipeline import ReportDataset  # noqa: E402
from cifar_sweeps.training.data import Splits, load_splits  # noqa: E402
from cifar_sweeps.training.train import TrainConfig, Trainer  # noqa: E402

MODELS = {  # model -> the config its throughput is measured with
    "airbench": dict(batch_size=512, optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True),
    "resnet18": dict(batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9),
    "resnet50": dict(batch_size=128, optimizer="adadelta", lr=0.068, activation="elu"),  # the report's best
}


def subset(s: Splits, n: int) -> Splits:
    return Splits(s.x_train[:n], s.y_train[:n], s.x_val[:256], s.y_val[:256], s.x_test[:256], s.y_test[:256])


def project_ips(model: str, splits: Splits, device: str, compile: bool = False) -> float:
    cfg = TrainConfig(model=model, epochs=3, device=device, compile=compile, **MODELS[model])
    t = Trainer(cfg, splits)
    for _ in range(1 + compile):  # warm-up: cuDNN autotuning, allocator; compile, graph capture
        t.train_epoch()
    return t.train_epoch()[2]


def report_ips(model: str, splits: Splits, device: str, workers: int) -> float:
    import torchvision.transforms as T

    from cifar_sweeps.training.models import build_model

    cfg = MODELS[model]
    tf = T.Compose([T.RandomHorizontalFlip(0.5), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = ReportDataset(splits.x_train, splits.y_train, tf)
    sampler = torch.utils.data.SubsetRandomSampler(np.arange(len(ds)))
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg["batch_size"], sampler=sampler, num_workers=workers)
    net = build_model(model, cfg.get("activation", "relu")).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    best = 0.0
    for _ in range(2):  # the first pass warms up; report the second
        t0, n = time.perf_counter(), 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad()
            loss_fn(net(xb), yb).backward()
            opt.step()
            n += len(yb)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = n / (time.perf_counter() - t0)
    return best


class GpuBusy:
    """Samples the GPU's utilization (NVML) every 0.5 s while a sweep runs."""

    def __init__(self):
        self.samples: list[float] = []
        self.mem: list[float] = []  # GiB used on the card
        self._stop = threading.Event()

    def __enter__(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:
            return self

        def loop():
            while not self._stop.wait(0.5):
                self.samples.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100)
                self.mem.append(pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**30)

        threading.Thread(target=loop, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    @property
    def busy(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def run_sweep(args, data: str) -> dict:
    from cifar_sweeps.settings import Settings
    from cifar_sweeps.store.queries import Store
    from cifar_sweeps.sweepspec.schema import load_spec_file, parse_spec
    from cifar_sweeps.tuning.driver import run_sweep as run

    spec = load_spec_file(args.spec)
    over = json.loads(args.spec_override) if args.spec_override else {}
    if over:
        raw = spec.model_dump(mode="json")
        for k, v in over.items():
            raw[k] = {**raw[k], **v} if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
        spec = parse_spec(raw)
    results = Path(args.results_dir or tempfile.mkdtemp())
    settings = Settings(results_dir=results, data=data)
    store = Store(settings.resolved_store_url())
    t0 = time.perf_counter()
    with GpuBusy() as gpu:
        sweep_id = run(spec, settings, store, data)
    wall = time.perf_counter() - t0
    rows, total = store.leaderboard(sweep_id=sweep_id, limit=100)
    best = rows[0]
    return {
        "trials": total,
        "wall_s": wall,
        "best_val": best.val_acc,
        "best_test": best.test_acc,
        "best_epochs": best.epochs,
        "epochs_total": sum(t.epochs for t in rows),
        "gpu_busy": gpu.busy,
        "gpu_mem_gib": max(gpu.mem) if gpu.mem else None,
        "best_config": best.config,
    }


# ---------------------------------------------------------------- (1) tests on the device


def check_models(device: str, batch: int = 4) -> list[list]:
    """Forward and backward of every zoo model on `device`, bf16 autocast where the device
    takes it and channels_last for the conv nets (as a trial runs them): finite loss, a
    gradient on every trainable parameter. One row per model."""
    from cifar_sweeps.sweepspec.registry import MLP_MODELS
    from cifar_sweeps.training.models import BUILDERS, build_model

    rows = []
    for name in BUILDERS:
        t0 = time.perf_counter()
        try:
            net = build_model(name).to(device)
            fmt = torch.contiguous_format if name in MLP_MODELS else torch.channels_last
            net = net.to(memory_format=fmt).train()
            x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
            y = torch.randint(0, 10, (batch,), device=device)
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")):
                loss = torch.nn.functional.cross_entropy(net(x).float(), y)
            loss.backward()
            grads = [p.grad for p in net.parameters() if p.requires_grad]
            ok = bool(torch.isfinite(loss)) and all(g is not None and torch.isfinite(g).all() for g in grads)
            rows.append([name, "ok" if ok else "NOT FINITE", (time.perf_counter() - t0) * 1000])
        except Exception as e:  # a failure is a finding: say which model and why, go on
            rows.append([name, f"FAILED: {type(e).__name__}: {str(e)[:80]}", (time.perf_counter() - t0) * 1000])
    return rows


def check_state_roundtrip(device: str, splits: Splits) -> list:
    """A trial's state saved on the device after one epoch, loaded into a new trainer: the
    weights and the epoch come back exactly, and the restored run trains its next epoch."""
    import io

    cfg = TrainConfig(model="airbench", width=0.25, epochs=3, batch_size=64, device=device, lr_schedule="onecycle")
    a = Trainer(cfg, splits)
    a.step_epoch()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    b = Trainer(cfg, splits)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, map_location=device, weights_only=False))
    pairs = zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    same = all(torch.equal(x, y) for x, y in pairs)
    ma, mb = a.step_epoch(), b.step_epoch()
    ok = same and b.epoch == a.epoch == 2 and abs(ma.train_loss - mb.train_loss) < 0.05
    detail = f"weights equal: {same}; next epoch's train loss {ma.train_loss:.4f} vs restored {mb.train_loss:.4f}"
    return ["state save/restore", "ok" if ok else "MISMATCH", detail]


def part_tests(device: str, splits: Splits) -> tuple[bool, list[list]]:
    rows = [[f"{m} fwd+bwd (bf16, channels_last)", status, f"{ms:.0f} ms"] for m, status, ms in check_models(device)]
    rows.append(check_state_roundtrip(device, subset(splits, 512)))
    return all(r[1] == "ok" for r in rows), rows


# ---------------------------------------------------------------- (3) ResNet-50 against the report's loop


def part_resnet(device: str, splits: Splits, images: int, workers: int, compile: bool) -> list:
    """images/s of the report's loop, this project's, and this project's with compile: true
    (None when not measured: compiling ResNet-50 on a CPU takes minutes)."""
    sub = subset(splits, min(images, len(splits.y_train)))
    ours = project_ips("resnet50", sub, device)
    report = report_ips("resnet50", sub, device, workers)
    fast = project_ips("resnet50", sub, device, compile=True) if compile else None
    return [len(sub.y_train), report, ours, fast]


# ---------------------------------------------------------------- the check


SMOKE_SPEC = {
    "num_samples": 2,
    "max_concurrent_trials": 2,
    "resources_per_trial": {"cpu": 1, "gpu": 0},
    "fixed": {"batch_size": 64},
    "search": {"points_to_evaluate": []},
    "params": {
        "lr": {"type": "loguniform", "low": 0.05, "high": 0.5},
        "weight_decay": {"type": "loguniform", "low": 0.0001, "high": 0.002},
        "epochs": {"type": "quniform", "low": 1, "high": 2, "q": 1},
    },
    "scheduler": {"type": "fifo"},
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--images", type=int, default=20000, help="training images per throughput timing")
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="--only throughput: the models timed")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--spec", default=str(ROOT / "search_spaces" / "gpu-airbench.json"))
    ap.add_argument("--spec-override", help="JSON merged into the spec (e.g. to shrink it)")
    ap.add_argument("--results-dir")
    ap.add_argument("--log-dir", help="where full logs go (default: the results folder)")
    ap.add_argument("--only", choices=["tests", "sweep", "resnet", "throughput"], help="run one part")
    ap.add_argument("--cpu-smoke", "--smoke", dest="smoke", action="store_true", help="the same, tiny, on a CPU")
    args = ap.parse_args(argv)
    if args.smoke:
        args.images, args.models, args.data = 256, ["airbench"], "synthetic:600"
        args.spec_override = json.dumps(SMOKE_SPEC)
    say_data(args.data)
    args.results_dir = args.results_dir or tempfile.mkdtemp(prefix="gpu-check-")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    log_dir = Path(args.log_dir or args.results_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"GPU check on {name}; data {args.data}; results and logs in {log_dir}", flush=True)
    if args.data.startswith("synthetic:") and not args.smoke:
        print("WARNING: synthetic data (no CIFAR10_ARCHIVE): accuracies below mean nothing", flush=True)
    splits = load_splits(args.data, cache_dir())
    parts = [args.only] if args.only else ["tests", "sweep", "resnet"]
    summary, ok = [], True
    if "tests" in parts:
        passed, rows = part_tests(device, splits)
        ok &= passed
        (log_dir / "tests.txt").write_text("\n".join(" | ".join(map(str, r)) for r in rows) + "\n")
        print_table(["test", "result", "detail"], rows)
        summary.append(["tests", f"{sum(r[1] == 'ok' for r in rows)}/{len(rows)} passed", ""])
    if "sweep" in parts:
        s = run_sweep(args, args.data)
        (log_dir / "sweep.json").write_text(json.dumps(s, indent=1, default=str))
        mem = "-" if s["gpu_mem_gib"] is None else f"{s['gpu_mem_gib']:.1f} GiB peak"
        busy = "-" if s["gpu_busy"] is None else f"{s['gpu_busy']:.0%} busy"
        summary.append(
            ["sweep best test_acc", f"{s['best_test'] or 0:.4f}", f"{s['trials']} trials, {s['wall_s']:.0f} s"]
        )
        summary.append(["GPU while trials shared it", mem, busy])
    if "resnet" in parts:
        n, report, ours, fast = part_resnet(device, splits, 256 if args.smoke else 12800, args.workers, not args.smoke)
        summary.append(["ResNet-50 img/s, batch 128", f"{ours:,.0f} vs report {report:,.0f}", f"{ours / report:.1f}x"])
        if fast is not None:
            summary.append(
                ["ResNet-50 img/s, compile: true", f"{fast:,.0f} vs report {report:,.0f}", f"{fast / report:.1f}x"]
            )
    if args.only == "throughput":
        throughput(args, device, splits)
    if summary:
        print()
        print_table(["check", "result", "detail"], summary)
    print("targets on one H100/H200: sweep best test_acc >= 0.94 within 300 s; ResNet-50 >= 10x the report's loop")
    return 0 if ok else 1


def throughput(args, device: str, splits: Splits) -> None:
    rows = []
    sub = subset(splits, min(args.images, len(splits.y_train)))
    for m in args.models:
        p = project_ips(m, sub, device)
        r = report_ips(m, sub, device, args.workers)
        rows.append([m, MODELS[m]["batch_size"], r, p, p / r])
    print_table(["model", "batch", "report img/s", "project img/s", "project/report"], rows)


if __name__ == "__main__":
    sys.exit(main())
