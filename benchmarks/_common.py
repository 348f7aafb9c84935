"""Helpers shared by the benchmark scripts: data location, medians, table printing."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python benchmarks/X.py` puts this folder first on the import path, where a script's name
# would shadow a library of the same name (torch imports `tabulate`): the scripts import
# each other as `benchmarks.X` from the repository's root instead.
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
# The original pixels first (every accuracy figure is measured on them), then the lossy copy.
ARCHIVES = [ROOT.parent / "shared" / "data" / name for name in ("cifar10-png.tar.xz", "cifar10-jpeg.tar.xz")]


def default_data() -> str:
    env = os.environ.get("CIFAR10_ARCHIVE")
    if env and Path(env).exists():
        return env
    return next((str(a) for a in ARCHIVES if a.exists()), "synthetic:5000")


ZEN = {(25, 17): "Zen 4", (25, 97): "Zen 4", (25, 160): "Zen 4c", (26, 2): "Zen 5", (26, 17): "Zen 5"}


def cpu_model() -> str:
    """The CPU's name, printed beside every figure (figures compare only on one CPU); an AMD
    EPYC, whose name alone doesn't say its generation, with its Zen core by family and model."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields: dict[str, str] = {}
    for line in info.splitlines():
        k, _, v = line.partition(":")
        fields.setdefault(k.strip(), v.strip())
    name = fields.get("model name", "unknown CPU")
    if "AMD" in name and fields.get("cpu family", "").isdigit() and fields.get("model", "").isdigit():
        fam, mod = int(fields["cpu family"]), int(fields["model"])
        name += f" ({ZEN.get((fam, mod), 'Zen')}, family {fam} model {mod})"
    elif "amx_tile" in fields.get("flags", ""):
        name += " (AMX)"
    return name


def say_data(data: str) -> None:
    """The first line of a benchmark's output: which data it measures, loudly when it is
    not the real CIFAR-10 (no archive found: synthetic images, whose accuracies mean nothing)."""
    if data.startswith("synthetic"):
        print(
            f"*** SYNTHETIC DATA ({data}): no CIFAR-10 archive found (set CIFAR10_ARCHIVE); "
            "accuracies below are not CIFAR-10's ***",
            flush=True,
        )
    else:
        print(f"data: {data}", flush=True)


def read_runs(path: Path) -> list[dict]:
    """A benchmark's runs so far, one JSON object a line (a killed benchmark goes on from them)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def append_run(path: Path, row: dict) -> None:
    """One finished run, appended at once: a kill loses only the run in progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def cache_dir() -> Path:
    return Path(os.environ.get("CIFAR_SWEEPS_RESULTS_DIR", ROOT / "results")) / "cache"


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in cells:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:,.2f}" if abs(c) < 100 else f"{c:,.0f}"
    return str(c)


def fit_sweep(spec, splits, callbacks: list | None = None, with_epochs: bool = False):
    """Run a sweep spec on `splits` through the project's Tuner, with a throwaway store and
    results folder; returns (trials from the store, wall seconds of tuner.fit), and with
    `with_epochs` every epoch row in the order they were recorded as a third item."""
    import tempfile
    import time

    from sqlalchemy import select

    from cifar_sweeps.settings import Settings
    from cifar_sweeps.store.queries import Store
    from cifar_sweeps.store.tables import Epoch, Trial
    from cifar_sweeps.tuning.driver import build_tuner

    with tempfile.TemporaryDirectory() as d:
        settings = Settings(results_dir=Path(d))
        store = Store(settings.resolved_store_url())
        sweep = store.create_sweep(spec.model_dump(mode="json"), "bench", "bench")
        t0 = time.perf_counter()
        tuner = build_tuner(spec, splits, store, sweep.id, settings)
        tuner._local_tuner._run_config.callbacks.extend(callbacks or [])
        tuner._local_tuner._run_config.verbose = 0
        tuner.fit()
        wall = time.perf_counter() - t0
        trials = store.trials(sweep.id)
        if not with_epochs:
            return trials, wall
        with store.sessions() as s:
            epochs = list(s.scalars(select(Epoch).join(Trial).where(Trial.sweep_id == sweep.id).order_by(Epoch.id)))
        return trials, wall, epochs
