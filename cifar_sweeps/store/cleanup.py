"""A sweep's disk, counted and removed: its Tune folders (the search's, the refit's, the
repeats': `<storage>/<sweep id>` and `<storage>/<sweep id>-*`, which hold its checkpoints and
model files), its cached exports, and its rows. `cifar-sweeps du` and `delete`,
`GET /disk` and `DELETE /sweeps/{id}` call these; nothing of another sweep is touched (a
sweep id is never a prefix of another's: ids are fixed-length, and the pattern keeps the
dash)."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel

from cifar_sweeps.errors import SweepError
from cifar_sweeps.store.states import ACTIVE


class SweepDisk(BaseModel):
    sweep_id: str
    name: str
    status: str
    bytes: int  # its Tune folders and cached exports


class DiskUse(BaseModel):
    sweeps: list[SweepDisk]  # largest first
    data_cache_bytes: int  # decoded data sets (<results>/cache), shared by every sweep
    other_bytes: int  # the store's file, exports of deleted trials, anything else under the results folder
    total_bytes: int


def sweep_folders(storage_root: Path | str, sweep_id: str) -> list[Path]:
    """The sweep's Tune folders on local storage (a URI's are not listed here)."""
    if isinstance(storage_root, str):
        return []
    root = Path(storage_root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name == sweep_id or p.name.startswith(f"{sweep_id}-"))


def export_files(cache_dir: Path, trial_ids: list[str]) -> list[Path]:
    folder = Path(cache_dir) / "exports"
    if not folder.is_dir():
        return []
    return [p for t in trial_ids for p in folder.glob(f"{t}-*") if p.is_file()]


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (links are not followed)."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def disk_use(settings, store) -> DiskUse:
    rows, _ = store.list_sweeps(limit=100_000)
    root, cache = settings.storage_root(), settings.cache_dir
    sweeps = []
    for s in rows:
        trials = [t.id for t in store.trials(s.id)]
        paths = sweep_folders(root, s.id) + export_files(cache, trials)
        sweeps.append(SweepDisk(sweep_id=s.id, name=s.name, status=s.status, bytes=sum(map(tree_bytes, paths))))
    sweeps.sort(key=lambda x: -x.bytes)
    data = sum(tree_bytes(p) for p in Path(cache).glob("cifar10-*.npz")) if Path(cache).is_dir() else 0
    total = tree_bytes(Path(settings.results_dir)) if Path(settings.results_dir).is_dir() else 0
    if not isinstance(root, str) and not Path(root).resolve().is_relative_to(Path(settings.results_dir).resolve()):
        total += tree_bytes(Path(root))
    counted = data + sum(s.bytes for s in sweeps)
    return DiskUse(sweeps=sweeps, data_cache_bytes=data, other_bytes=max(0, total - counted), total_bytes=total)


def delete_sweep(settings, store, sweep_id: str) -> int:
    """Remove a sweep that is not queued or running: its Tune folders, cached exports and
    rows (trials and epochs with them). Files go first: a failure leaves the rows, and the
    delete can be asked again. Returns the bytes freed."""
    sweep = store.sweep(sweep_id)  # NotFound naming it
    if sweep.status in ACTIVE:
        raise SweepError(f"sweep {sweep_id} is {sweep.status}: stop it first (cifar-sweeps stop {sweep_id})")
    trials = [t.id for t in store.trials(sweep_id)]
    paths = sweep_folders(settings.storage_root(), sweep_id) + export_files(settings.cache_dir, trials)
    freed = sum(map(tree_bytes, paths))
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    store.delete_sweep(sweep_id)
    return freed
