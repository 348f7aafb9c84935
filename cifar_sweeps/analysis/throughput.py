"""What a trial shape trains at, before the store has measured it: a probe (training/probe.py:
the real training loop for a few batches, in a process of its own), kept per shape (model,
batch size, width, depth, threads, device, image size, precision) in
<results>/cache/throughput.json, or the file CIFAR_SWEEPS_THROUGHPUT_FILE names (results
folders on one machine may share one), for the next plan; and how much faster a shape
trains with more threads (the refit's, which runs alone). Torch-free: the API plans too.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_sweeps.sweepspec.config import TrainConfig
from cifar_sweeps.sweepspec.schema import SweepSpec
from cifar_sweeps.sweepspec.spaces import candidates

PROBE_TIMEOUT_S = 60


@dataclass(frozen=True)
class Throughput:
    seconds_per_epoch: float | None  # of this spec's data
    peak_mb: float | None
    source: str
    train_s_per_image: float | None = None  # training alone (a refit validates nothing); None: not measured


def trial_config(spec: SweepSpec) -> dict[str, Any]:
    """The probe's trial: the spec's fixed values, each searched param at its first
    candidate (the model, batch size, width and depth decide the cost)."""
    cfg = dict(spec.fixed)
    for name, p in spec.params.items():
        c = candidates(p)
        if c and name in TrainConfig.model_fields:
            cfg[name] = max(c) if name in ("batch_size", "width", "depth") and isinstance(c[0], (int, float)) else c[0]
    return shape_of(spec, cfg)


def shape_of(spec: SweepSpec, config: dict[str, Any]) -> dict[str, Any]:
    """A probe's shape of one trial's `config` under `spec`: its training fields, the
    trial's threads and device, the spec's image size."""
    cfg = {k: v for k, v in config.items() if k in TrainConfig.model_fields and k != "epochs"}
    cfg["threads"] = max(1, int(spec.resources_per_trial.cpu))
    cfg["device"] = "cuda" if spec.resources_per_trial.gpu > 0 else "cpu"
    if spec.data.image_size != 32:  # 32 stays out of the key: throughputs kept before sizes existed hold
        cfg["image_size"] = spec.data.image_size
    return cfg


def key_of(cfg: dict[str, Any]) -> str:
    keys = ("model", "batch_size", "width", "depth", "threads", "device", "model_args", "image_size", "whiten")
    defaults = {**TrainConfig().model_dump(), "model_args": {}, "image_size": 32}
    key = {k: cfg.get(k, defaults.get(k)) for k in keys}
    if isinstance(key["width"], float):  # 0.5000001 and 0.5 are one shape (and one entry)
        key["width"] = round(key["width"], 3)
    for k, default in (("model_args", {}), ("image_size", 32), ("whiten", False)):  # absent from older keys
        if key[k] == default:
            del key[k]
    # What an epoch costs also depends on the arithmetic and the evaluation's views. A config
    # from before `precision` ran fp32 on CPUs (its amp was CUDA's only), and a key from
    # before these two never matches: the shape is probed again.
    key["precision"] = cfg.get("precision") or ("fp32" if key["device"] == "cpu" or cfg.get("amp") is False else "auto")
    key["tta"] = int(cfg.get("tta") or 0)
    return json.dumps(key, sort_keys=True)


def from_probe(
    cfg: dict[str, Any], n_train: int, n_val: int, cache: Path, run_probe: bool, timeout_s: float = PROBE_TIMEOUT_S
) -> Throughput | None:
    """Seconds per epoch from a probe of this trial shape (cached), or None; a probe that
    failed or timed out is an "unknown" figure that says why, remembered (in this process
    and in throughput.json, for the next command) for FAILURE_MEMO_S."""
    key = key_of(cfg)
    hit, how = read_cache(cache).get(key), "a probe kept from an earlier plan"
    if hit is not None and "error" in hit:
        hit = None if time.time() - float(hit.get("at", 0)) > FAILURE_MEMO_S else hit
    if hit is None and run_probe:
        hit, how = _probe(cfg, timeout_s), "a probe just now"
        remember(cache, key, hit)
    if hit is None:
        return None
    if "error" in hit:
        return Throughput(None, None, f"unknown: the probe of this trial shape {hit['error']}")
    seconds = n_train / hit["train_images_per_s"] + n_val / hit["eval_images_per_s"]
    source = f"{how} ({hit['train_images_per_s']:.0f} train images/s)"
    return Throughput(seconds, hit["peak_mb"], source, 1 / hit["train_images_per_s"])


def thread_speedup(
    cfg: dict[str, Any], threads: int, cache: Path, timeout_s: float = PROBE_TIMEOUT_S
) -> tuple[float, str] | None:
    """How much faster the CPU trial shape `cfg` trains with `threads` torch threads than
    with its own, from two probes (kept in `cache` as any probe), bounded to [1, the ratio of
    threads]; with the reason in words. None on a GPU, with no more threads, or when a probe
    fails: the caller then keeps the trial's own rate (an underestimate, never an overrun)."""
    own = int(cfg.get("threads") or 1)
    if cfg.get("device") != "cpu" or threads <= own:
        return None
    base = from_probe(cfg, 1, 0, cache, True, timeout_s)
    more = from_probe({**cfg, "threads": threads}, 1, 0, cache, True, timeout_s)
    if base is None or more is None or not base.train_s_per_image or not more.train_s_per_image:
        return None
    # The probe times training alone on random images; a real epoch also loads and augments,
    # which gains less from threads: the probe's 1.65x came to about 1.2x in a tinynet refit
    # (docs/performance.md). So half the probed gain on a log scale: the square root.
    probed = max(base.train_s_per_image / more.train_s_per_image, 1.0)
    speedup = min(math.sqrt(probed), threads / own)
    return speedup, f"{speedup:.2f}x the search's rate with {threads} threads instead of {own} (probed {probed:.2f}x)"


# A failed probe is not run again for this long (seconds): a shape that can't train (too
# large for the memory, a plug-in that fails) would otherwise cost a process per request.
FAILURE_MEMO_S = 600.0


MAX_CACHED_SHAPES = 500  # entries of throughput.json; the oldest go first


PROBE_MAX_BATCH = 1024  # images per probe batch: past this, images/s hardly moves


PROBE_MAX_PIXELS = 1024 * 32 * 32  # per batch: a 512x512 shape probes at batch 4, not 1024


_CACHE_LOCK = threading.Lock()


def probe_shape(cfg: dict[str, Any]) -> dict[str, Any]:
    """The shape a probe runs: the trial's, with its batch bounded (in images and pixels) and
    its threads no more than this machine has; throughput per image barely depends on either
    past these bounds, and no request can make a probe allocate gigabytes."""
    size = int(cfg.get("image_size", 32))
    batch = int(cfg.get("batch_size", TrainConfig().batch_size))
    cap = max(4, min(PROBE_MAX_BATCH, PROBE_MAX_PIXELS // (size * size)))
    threads = min(int(cfg.get("threads") or 1), os.cpu_count() or 1)
    return {**cfg, "batch_size": min(batch, cap), "threads": max(1, threads)}


def _probe(cfg: dict[str, Any], timeout_s: float) -> dict:
    """The probe in a process of its own (never this one: the API stays free of torch), one
    at a time (503 for the next): its figures, or {"error": why, "at": when}."""
    from cifar_sweeps.errors import ChildTimeout
    from cifar_sweeps.subprocs import run_torch

    memo = f"not probed again for {FAILURE_MEMO_S / 60:.0f} minutes"
    try:
        p = run_torch("cifar_sweeps.training.probe", probe_shape(cfg), timeout_s, "the throughput probe")
    except ChildTimeout:  # a loaded machine: the plan goes on with "unknown"
        return {"error": f"took over {timeout_s:g} s and was stopped ({memo})", "at": time.time()}
    try:
        if p.returncode == 0:
            return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        pass
    last = (p.stderr.strip().splitlines() or ["no output"])[-1][:200]
    return {"error": f"failed ({last}); {memo}", "at": time.time()}


def read_cache(cache: Path) -> dict[str, Any]:
    """throughput.json, or {} when it is missing or unreadable (a torn file is no error)."""
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def remember(cache: Path, key: str, hit: dict[str, Any]) -> None:
    """Add a probe's result to throughput.json: read, merge and write under a lock (this
    process's and a file lock, for other service processes), written to a temporary file
    and renamed over, so a reader never sees half a file; the oldest entries go past
    MAX_CACHED_SHAPES."""
    import fcntl
    import tempfile

    cache.parent.mkdir(parents=True, exist_ok=True)
    with _CACHE_LOCK, open(cache.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = read_cache(cache)
        known.pop(key, None)
        known[key] = hit
        while len(known) > MAX_CACHED_SHAPES:
            known.pop(next(iter(known)))
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".throughput-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(known, f, indent=1)
        os.replace(tmp, cache)
