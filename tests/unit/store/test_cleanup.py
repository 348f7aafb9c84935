"""Delete a sweep and see the disk (DELETE /sweeps/{id}, `cifar-sweeps delete`, `du`): its
Tune folders, checkpoints, model files, cached exports and rows go; a running one is
refused; nothing of another sweep is touched."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from cifar_sweeps.cli import main
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs
from tests.helpers.specs import AUTH


def _sweep_with_files(settings, store, name: str, mib: int):
    """A finished sweep with a trial, its Tune folders (search and refit) and an export."""
    sweep = store.create_sweep({"name": name}, "synthetic:100", "v")
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp"}, 1)
    root = settings.storage_root()
    for folder in (root / sweep.id / "trial_t1" / "checkpoint_000000", root / f"{sweep.id}-refit" / "trial_refit"):
        folder.mkdir(parents=True)
        (folder / "model.pt").write_bytes(b"x" * (mib * 2**20))
    store.trial_checkpoint(tid, str(root / sweep.id / "trial_t1" / "checkpoint_000000" / "model.pt"))
    exports = settings.cache_dir / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    (exports / f"{tid}-0123456789abcdef.onnx").write_bytes(b"o" * 1024)
    lifecycle.fail(store, sweep.id, lifecycle.Reason.DRIVER_ERROR, "ended for the test")
    return sweep.id, tid


def test_delete_removes_one_sweeps_files_and_rows_and_nothing_else(tmp_path, capsys):
    settings = Settings(results_dir=tmp_path / "results", api_token="s3cret-token", cache_ttl_s=0)
    store = get_store(settings.resolved_store_url())
    gone, gone_trial = _sweep_with_files(settings, store, "old", 2)
    kept, kept_trial = _sweep_with_files(settings, store, "keep", 1)
    running = store.create_sweep({"name": "live"}, "synthetic:100", "v")
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    (settings.cache_dir / "cifar10-0000.npz").write_bytes(b"d" * 2**20)

    assert main(["du", "--results-dir", str(settings.results_dir), "--json"]) == 0
    use = json.loads(capsys.readouterr().out)
    sizes = {s["sweep_id"]: s["bytes"] for s in use["sweeps"]}
    assert sizes[gone] == 4 * 2**20 + 1024 and sizes[kept] == 2 * 2**20 + 1024 and sizes[running.id] == 0
    assert use["data_cache_bytes"] == 2**20 and use["total_bytes"] >= 7 * 2**20

    client = TestClient(create_app(settings, FakeJobs(store)))
    assert client.delete(f"/sweeps/{gone}").status_code == 401  # behind the token
    r = client.delete(f"/sweeps/{running.id}", headers=AUTH)
    assert r.status_code == 409 and "stop it first" in r.json()["detail"]
    assert client.delete(f"/sweeps/{gone}", headers=AUTH).status_code == 204
    assert client.get(f"/sweeps/{gone}").status_code == 404 and client.get(f"/trials/{gone_trial}").status_code == 404
    root = settings.storage_root()
    assert not (root / gone).exists() and not (root / f"{gone}-refit").exists()
    assert not list((settings.cache_dir / "exports").glob(f"{gone_trial}-*"))
    # The other sweep: its folders, its export, its rows, the data cache, all there.
    assert (root / kept / "trial_t1" / "checkpoint_000000" / "model.pt").stat().st_size == 2**20
    assert (root / f"{kept}-refit").is_dir() and list((settings.cache_dir / "exports").glob(f"{kept_trial}-*"))
    assert client.get(f"/trials/{kept_trial}").status_code == 200
    assert (settings.cache_dir / "cifar10-0000.npz").exists()
    assert client.delete(f"/sweeps/{gone}", headers=AUTH).status_code == 404

    assert main(["delete", kept, "--results-dir", str(settings.results_dir)]) == 0
    assert "deleted, 2.0 MiB freed" in capsys.readouterr().out
    assert main(["delete", running.id, "--results-dir", str(settings.results_dir)]) != 0  # running: refused
