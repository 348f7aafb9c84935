"""A read-only or full results folder: a clear error that names the folder and the cause,
fast (never a hang), and nothing stored is lost. The file systems are real: a small
tmpfs, filled to the last block or remounted read-only (needs root, as on CI); without
root, a folder without write permission stands in for the read-only one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.artifacts import StorageError, check_writable
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs
from tests.helpers.paths import REPO
from tests.helpers.specs import AUTH, GOOD

ROOT = REPO
CLI_TIMEOUT_S = 120  # a hang shows up as this timeout; the check itself takes milliseconds


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)):
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(folder: Path, leave_mb: float = 0) -> None:
    """Writes until the file system has only `leave_mb` MiB (or no block) left."""
    # Unbuffered: a write cut short by ENOSPC leaves nothing in a buffer for close() to
    # flush again (which raised outside the suppress, depending on how full the disk was).
    with open(folder / "ballast", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while shutil.disk_usage(folder).free > leave_mb * 2**20 + 65536 or not leave_mb:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())


@pytest.fixture
def full_dir(tmp_path) -> Iterator[Path]:
    with tmpfs(tmp_path / "full", 512) as d:
        _fill(d)
        yield d


@pytest.fixture
def readonly_dir(tmp_path) -> Iterator[Path]:
    """Yields a folder and a function that makes it read-only (after it was set up)."""
    d = tmp_path / "ro"
    if os.geteuid() != 0:
        d.mkdir()
        yield d, lambda: d.chmod(0o555)
        d.chmod(0o755)
        return
    with tmpfs(d, 4096):
        yield d, lambda: _mount("-o", "remount,ro", str(d)) or pytest.fail("remount ro failed")


# ---------------------------------------------------------------- the check itself


def test_check_names_a_read_only_folder(readonly_dir):
    d, make_ro = readonly_dir
    make_ro()
    with pytest.raises(
        StorageError,
        match=f"results folder {d}.*can't be written: (it is on a read-only file system|permission denied)",
    ):
        check_writable(d, 0)
    with pytest.raises(StorageError, match="can't be written"):
        check_writable(d / "sub" / "folder", 0)  # one that would have to be created


def test_check_names_a_full_folder(full_dir):
    with pytest.raises(StorageError, match=f"results folder {full_dir} can't be written: no space left"):
        check_writable(full_dir, 0)


def test_check_wants_the_configured_free_space(tmp_path):
    check_writable(tmp_path, 1)  # plenty here
    with pytest.raises(StorageError, match=r"is full: \d+ MiB free, a sweep needs at least 1e\+09 MiB"):
        check_writable(tmp_path, 1e9)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StorageError, match="a file is in the way"):
        check_writable(tmp_path / "afile", 0)
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]  # no probe left behind
    check_writable("s3://bucket/results", 1e9)  # a URI is the object store's business


# ---------------------------------------------------------------- the API


def _client(settings: Settings) -> tuple[TestClient, object]:
    store = get_store(settings.resolved_store_url())
    return TestClient(create_app(settings, FakeJobs(store))), store


def _seed(client: TestClient) -> str:
    r = client.post("/sweeps", json=GOOD, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize("kind", ["read-only", "full"])
def test_post_sweeps_answers_507_and_keeps_the_store(kind, tmp_path, readonly_dir, request):
    """The store is fine, the Tune results folder is not: 507 naming it, nothing stored."""
    if kind == "full":
        results = request.getfixturevalue("full_dir")
    else:
        results, make_ro = readonly_dir
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    ok = Settings(results_dir=tmp_path / "ok", store_url=store_url, api_token="s3cret-token")
    client, store = _client(ok)
    kept = _seed(client)
    if kind == "read-only":
        make_ro()
    bad = ok.model_copy(update={"results_dir": results})
    client, store = _client(bad)
    for path in ("/sweeps", f"/sweeps/{kept}/resume"):
        t0 = time.monotonic()
        r = client.post(path, json=GOOD if path == "/sweeps" else None, headers=AUTH)
        assert time.monotonic() - t0 < 10
        if path == "/sweeps":
            assert r.status_code == 507, r.text
            detail = r.json()["detail"]  # the folder by its name, never its path (logged in full)
            assert Path(results).name in detail and str(results) not in detail and "nothing was stored" in detail
            assert (
                ("full" in r.json()["detail"] or "no space" in r.json()["detail"])
                if kind == "full"
                else ("read-only" in r.json()["detail"] or "permission denied" in r.json()["detail"])
            )
        else:
            assert r.status_code == 409  # never started: refused before the folder matters
    listed = client.get("/sweeps").json()
    assert [s["id"] for s in listed["items"]] == [kept] and listed["total"] == 1


def test_store_disk_filling_under_a_running_service(tmp_path):
    """The disk of a running service's SQLite store fills up: reads keep working, a write
    is a 507 in SQLite's own words, nothing stored changes, and once space is freed the
    same service writes again (no restart)."""
    with tmpfs(tmp_path / "disk", 4096) as d:
        settings = Settings(results_dir=d, api_token="s3cret-token", min_free_mb=0)
        client, store = _client(settings)
        kept = _seed(client)
        _fill(d)
        assert client.get("/sweeps").json()["total"] == 1
        assert client.get("/leaderboard").status_code == 200
        r = client.post(f"/sweeps/{kept}/stop", headers=AUTH)  # writes stop_requested
        assert r.status_code == 507, r.text
        assert r.json()["detail"].startswith("the store can't be written: database or disk is full")
        r = client.post("/sweeps", json=GOOD, headers=AUTH)
        assert r.status_code == 507 and "no space left" in r.json()["detail"]
        assert client.get(f"/sweeps/{kept}").json()["status"] == "queued"
        assert client.get("/sweeps").json()["total"] == 1
        (d / "ballast").unlink()
        assert client.post(f"/sweeps/{kept}/stop", headers=AUTH).json()["status"] == "stopped"
        store.engine.dispose()


@pytest.mark.skipif(os.geteuid() != 0, reason="root ignores file modes; a read-only mount needs root")
def test_store_on_a_read_only_disk_is_named(readonly_dir):
    """A service or CLI started on a read-only SQLite store says which store can't be
    opened and why, in one line, and the file is untouched."""
    d, make_ro = readonly_dir
    settings = Settings(results_dir=d, api_token="s3cret-token", min_free_mb=0)
    client, store = _client(settings)
    _seed(client)
    store.engine.dispose()
    make_ro()
    db = d / "cifar_sweeps.db"
    before = db.read_bytes()
    for cmd in (["leaderboard"], ["serve", "--port", "1"]):
        r = _run_cli(cmd, {"CIFAR_SWEEPS_RESULTS_DIR": str(d)})
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert f"cifar-sweeps {cmd[0]}: error: the store sqlite:///{db} can't be opened: unable to open" in r.stderr
    assert db.read_bytes() == before


# ---------------------------------------------------------------- the CLI driver


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cifar_sweeps", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env={**os.environ, **env},
    )


def test_cli_run_on_a_full_results_folder_fails_fast(full_dir):
    """Default store (SQLite in the results folder) on a full disk: the run stops before
    anything else, with the folder and the cause, exit status 1."""
    r = _run_cli(["run", "quickstart", "--data", "synthetic:100"], {"CIFAR_SWEEPS_RESULTS_DIR": str(full_dir)})
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"cifar-sweeps run: error: results folder {full_dir} can't be written: no space left" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_run_with_tune_storage_full_records_why(full_dir, tmp_path):
    """Store elsewhere, Tune's storage on the full disk: the sweep row says `failed` and
    why, so GET /sweeps/{id} tells the user as well as the terminal."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    r = _run_cli(
        [
            "run",
            "quickstart",
            "--data",
            "synthetic:100",
            "--store-url",
            store_url,
            "--results-dir",
            str(tmp_path / "results"),
        ],
        {"CIFAR_SWEEPS_STORAGE_PATH": str(full_dir)},
    )
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"results folder {full_dir} can't be written: no space left" in r.stderr
    (sweep,), total = get_store(store_url).list_sweeps()
    assert total == 1 and sweep.status == "failed"
    assert sweep.error.startswith("StorageError: results folder") and str(full_dir) in sweep.error
    assert json.dumps(sweep.spec)  # the spec is kept: it can be submitted again as it was


# ---------------------------------------------------------------- a disk that fills mid-sweep


@pytest.mark.slow
def test_disk_filling_mid_sweep_interrupts_it_resumable(ray_head, tmp_path):
    """Tune's storage fills while a sweep runs: the sweep is interrupted on its own within
    seconds (no trial dies on a failed checkpoint, no hang), says why, keeps every result,
    and resumes to the end once space is freed, the cut trial from its checkpoint."""
    from tests.helpers.ray_head import VENV_BIN, cli_env

    results = tmp_path / "results"
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "name": "disk",
                "num_samples": 2,
                "max_concurrent_trials": 1,
                "scheduler": {"type": "fifo"},
                "search": {"algorithm": "hyperopt", "seed": 0, "n_initial_points": 2},
                "fixed": {"model": "default_conv", "epochs": 40, "batch_size": 64},
                "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.05}},
            }
        )
    )
    with tmpfs(tmp_path / "storage", 64 * 1024) as storage:
        # 64 MiB disk, 40 MiB needed to start: the watch interrupts a sweep under 20 MiB free.
        env = cli_env(ray_head, results, CIFAR_SWEEPS_STORAGE_PATH=str(storage), CIFAR_SWEEPS_MIN_FREE_MB="40")
        cmd = [str(VENV_BIN / "cifar-sweeps"), "run", str(spec), "--data", "synthetic:600"]
        driver = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        store = _wait_for_epochs(results, 2, driver)
        _fill(storage, leave_mb=10)
        out, _ = driver.communicate(timeout=CLI_TIMEOUT_S)  # a hang fails here
        (sweep,), _ = store.list_sweeps()
        assert sweep.status == "interrupted", out[-3000:]
        assert "is down to" in sweep.error and "resume the sweep" in sweep.error
        assert f"sweep {sweep.id}: interrupted (interrupted: the results folder {storage}" in out
        before = {t.id: t.epochs for t in store.trials(sweep.id)}
        assert max(before.values()) >= 2
        assert {t.status for t in store.trials(sweep.id)} <= {"pending", "terminated"}  # none errored

        (storage / "ballast").unlink()
        r = subprocess.run(
            [str(VENV_BIN / "cifar-sweeps"), "resume", sweep.id],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        sweep = store.get_sweep(sweep.id)
        assert sweep.status == "succeeded" and sweep.error is None
        trials = store.trials(sweep.id)
        assert len(trials) == 2 and all(t.status == "terminated" and t.epochs == 40 for t in trials)
        for tid in before:  # every epoch kept, each once
            assert [e.epoch for e in store.epochs(tid)] == list(range(1, 41))


def _wait_for_epochs(results: Path, n: int, driver: subprocess.Popen, timeout_s: float = 180):
    from cifar_sweeps.store.queries import Store

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        assert driver.poll() is None, driver.stdout.read()[-3000:]
        if (results / "cifar_sweeps.db").exists():
            store = Store(f"sqlite:///{results / 'cifar_sweeps.db'}")
            sweeps, _ = store.list_sweeps()
            if sweeps and any(t.epochs >= n for t in store.trials(sweeps[0].id)):
                return store
        time.sleep(0.5)
    driver.kill()
    pytest.fail(f"no trial reached epoch {n} within {timeout_s} s")
