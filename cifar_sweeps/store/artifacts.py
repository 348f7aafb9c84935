"""Where results live: the writability check run before a sweep starts, and reading
checkpoint files from where Tune put them: a local path (or NFS mount) or a pyarrow
filesystem URI (s3://, gs://, ...)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cifar_sweeps.errors import NotFound, StorageError, SweepError

# A trial checkpoint's file of its best weights so far, with its config and normalization:
# what the leaderboard, export and predict read (trainable.py writes it).
MODEL_FILE = "model.pt"
# Beside it: the trainer's whole state at that checkpoint (weights, optimizer, epoch, RNG), what
# a retried or resumed trial, and a continuation of it, start from.
STATE_FILE = "state.pt"

if TYPE_CHECKING:
    from fastapi.responses import Response

    from cifar_sweeps.settings import Settings


def check_writable(path: str | Path, min_free_mb: float) -> None:
    """Fails fast, naming the folder and the cause, where Tune would otherwise fail late
    (a trial's checkpoint, the experiment state) after hours of training: the folder is
    created if missing, a probe file is written, flushed to disk and removed, and the
    free space must be at least `min_free_mb` (MiB). URIs (s3://...) are not probed."""
    if "://" in str(path) and not str(path).startswith("file://"):
        return
    folder = Path(str(path).removeprefix("file://"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{uuid.uuid4().hex}"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * 4096)  # one block: an empty file would fit on a full disk
                f.flush()
                os.fsync(f.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as e:
        raise StorageError(f"results folder {folder} can't be written: {_cause(e)}") from None
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < min_free_mb:
        raise StorageError(
            f"results folder {folder} is full: {free_mb:.0f} MiB free, a sweep "
            f"needs at least {min_free_mb:g} MiB (CIFAR_SWEEPS_MIN_FREE_MB)"
        )


def _cause(e: OSError) -> str:
    return {
        errno.EROFS: "it is on a read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "the disk quota is used up",
        errno.ENOTDIR: "a file is in the way of the folder",
        errno.EEXIST: "a file is in the way of the folder",
    }.get(e.errno, e.strerror or str(e))


def open_checkpoint(path: str, filename: str) -> Response:
    from fastapi.responses import FileResponse, Response

    if "://" not in path or path.startswith("file://"):
        local = Path(path.removeprefix("file://"))
        if not local.is_file():
            raise FileNotFoundError(path)
        return FileResponse(local, media_type="application/octet-stream", filename=filename)
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    info = fs.get_file_info(inner)
    if info.type != pyarrow.fs.FileType.File:
        raise FileNotFoundError(path)
    with fs.open_input_stream(inner) as f:
        data = f.read()
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@contextlib.contextmanager
def local_model_file(path: str, trial_id: str) -> Iterator[Path]:
    """A trial's model file as a local path (a remote one fetched into a temporary file for
    the block); NotFound when it is gone from storage."""
    try:
        if "://" not in path or path.startswith("file://"):
            yield Path(open_checkpoint(path, MODEL_FILE).path)
            return
        with tempfile.TemporaryDirectory() as d:
            local = Path(d, MODEL_FILE)
            local.write_bytes(open_checkpoint(path, MODEL_FILE).body)
            yield local
    except FileNotFoundError:
        raise NotFound(f"the checkpoint file of trial {trial_id} is gone from storage") from None


def check_results_writable(settings: Settings) -> None:
    """The results folder (store, data cache) and Tune's storage can take a sweep's files."""
    root = settings.storage_root()
    folders = [str(settings.results_dir.resolve())] + ([] if isinstance(root, str) else [str(root)])
    for folder in dict.fromkeys(folders):
        check_writable(folder, settings.min_free_mb)


# The class a sweep's pickled Tuner names when its search follows the store's limits
# (tuning/live.py): only such a Tune state can be extended.
LIVE_SEARCH = "LiveSearch"


def why_not_extendable(experiment_path: str) -> str | None:
    """Why a sweep's search can't be extended from its Tune state, or None when it can: a
    state whose pickled Tuner names LIVE_SEARCH, since Tune's own generator stops at the
    count it started with. A remote URI is the driver's to read."""
    if "://" in experiment_path:
        return None
    state = Path(experiment_path, "tuner.pkl")
    if not state.is_file():
        return f"its Tune state is not at {experiment_path}"
    if LIVE_SEARCH.encode() not in state.read_bytes():
        return (
            "its search ran on an older version, whose Tune state stops at the trial count it started with; "
            "submit a new sweep with search.warm_start naming it instead"
        )
    return None


def last_state(checkpoint_path: str | None) -> Path:
    """The state file of a trial's latest checkpoint (beside the model file the store points
    to), to train on from: SweepError naming why there is none here."""
    if not checkpoint_path:
        raise SweepError("it has no checkpoint to go on from")
    if "://" in checkpoint_path and not checkpoint_path.startswith("file://"):
        raise SweepError(f"its checkpoints are in remote storage ({checkpoint_path.split('://')[0]}://), not read here")
    state = Path(checkpoint_path.removeprefix("file://")).parent / STATE_FILE
    if not state.is_file():
        raise SweepError(f"its last state file is gone from {state.parent}")
    return state
