"""A trial's best model as ONNX or TorchScript (training/export.py: float32 NCHW images in
[0, 1] in, logits out, the input statistics inside, class names and scores in its metadata):
what GET /trials/{id}/export serves and `cifar-sweeps export` and the Python API write.

The export runs in a child process (torch.onnx: the API process loads no torch), one at a
time with the service's other children, into a folder of its own under the cache; the file
it writes moves into the cache, kept by trial, model file and format, so asking again
answers from the cache. Leftover folders of a crashed export are removed by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Literal

from cifar_sweeps.errors import ExportFailed, NotFound
from cifar_sweeps.store.artifacts import local_model_file
from cifar_sweeps.subprocs import run_torch

Format = Literal["onnx", "torchscript"]
EXPORT_TIMEOUT_S = 300  # a ResNet-50's ONNX export takes tens of seconds on 2 cores
EXPORT_SUFFIX: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt"}


def export_key(trial_id: str, checkpoint_path: str, fmt: str) -> str:
    """A cached export's file name: the trial, a digest of its model file's path (a trial
    trained on writes a new one) and the format."""
    digest = hashlib.sha256(checkpoint_path.encode()).hexdigest()[:16]
    return f"{trial_id}-{digest}{EXPORT_SUFFIX[fmt]}"


def export_trial(store, trial_id: str, fmt: Format, cache: Path) -> Path:
    """The cached export of trial `trial_id`'s best model (made now if it isn't cached):
    NotFound for an unknown trial or one with no checkpoint yet, ExportFailed naming the
    export's last error line."""
    t = store.trial(trial_id)  # NotFound naming it
    if not t.checkpoint_path:
        raise NotFound(f"trial {t.id} has no checkpoint yet")
    cache.mkdir(parents=True, exist_ok=True)
    kept = cache / export_key(t.id, t.checkpoint_path, fmt)
    if kept.is_file():
        return kept
    _sweep_leftovers(cache)
    out_dir = Path(tempfile.mkdtemp(prefix="partial-", dir=cache))
    try:
        with local_model_file(t.checkpoint_path, t.id) as model_file:
            request = {"model_file": str(model_file), "out_dir": str(out_dir), "format": fmt, "trial_id": t.id}
            p = run_torch("cifar_sweeps.training.export", request, EXPORT_TIMEOUT_S, f"the export of trial {t.id}")
        out = out_dir / f"model{EXPORT_SUFFIX[fmt]}"
        if p.returncode != 0 or not out.is_file():
            last = (p.stderr.strip().splitlines() or ["no output"])[-1][:300]
            raise ExportFailed(f"the export of trial {t.id} to {fmt} failed: {last}")
        out.replace(kept)  # atomic: a concurrent reader sees the whole file or none
        return kept
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def export_to(store, trial_id: str, fmt: Format, cache: Path, path: str | Path) -> Path:
    """The export written to `path` as well (`cifar-sweeps export -o`, the Python API),
    through a temporary file beside it: a reader of `path` never sees half a file."""
    kept = export_trial(store, trial_id, fmt, cache)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    shutil.copyfile(kept, tmp)
    tmp.replace(path)
    return path


def _sweep_leftovers(cache: Path, older_than_s: float = 2 * EXPORT_TIMEOUT_S) -> None:
    """Remove the folders of exports that died mid-way (older than any export can run)."""
    now = time.time()
    for d in cache.glob("partial-*"):
        with contextlib.suppress(OSError):
            if now - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
