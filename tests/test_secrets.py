"""Secrets stay out of Ray: a job's runtime env (shown by the Jobs API and the dashboard)
and the environment of every process of a head the service starts hold no store password,
W&B key or API token; the driver still gets them, from files only this user reads. And a
head the service started leaves no process behind when the service is interrupted."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from cifar_sweeps.cluster.connection import HEAD_MARKER, head_environment
from cifar_sweeps.cluster.jobs import Jobs
from cifar_sweeps.settings import SECRETS_DIR_ENV, Settings, load_settings
from cifar_sweeps.store.queries import Store
from tests.helpers.ray_head import VENV_BIN, free_port

REPO = Path(__file__).resolve().parent.parent
PASSWORD, TOKEN, WANDB_KEY = "pw-Hx81-secret", "tok-Qm27-secret", "wk-Lr55-secret"
SECRETS = (PASSWORD, TOKEN, WANDB_KEY)


def _no_secret_in(text: str, where: str) -> None:
    for s in SECRETS:
        assert s not in text, f"{where} holds a secret"


def test_a_head_inherits_only_the_allow_list():
    env = {
        "PATH": "/bin",
        "HOME": "/h",
        "LC_ALL": "C",
        "RAY_AUTH_MODE": "disabled",
        "CUDA_VISIBLE_DEVICES": "0",
        "CIFAR_SWEEPS_RESULTS_DIR": "/r",
        "CIFAR_SWEEPS_API_TOKEN": TOKEN,
        "WANDB_API_KEY": WANDB_KEY,
        "CIFAR_SWEEPS_WANDB_API_KEY": WANDB_KEY,
        "AWS_SECRET_ACCESS_KEY": "x",
        "GITHUB_TOKEN": "y",
        "CIFAR_SWEEPS_STORE_URL": f"postgresql://u:{PASSWORD}@db/sweeps",
        "WANDB_PROJECT": "p",
    }
    out = head_environment(env)
    assert set(out) == {
        "PATH",
        "HOME",
        "LC_ALL",
        "RAY_AUTH_MODE",
        "CUDA_VISIBLE_DEVICES",
        "CIFAR_SWEEPS_RESULTS_DIR",
        "WANDB_PROJECT",
    }
    sqlite = "sqlite:////r/cifar_sweeps.db"  # no password: a head may know where the store is
    assert head_environment({"CIFAR_SWEEPS_STORE_URL": sqlite}) == {"CIFAR_SWEEPS_STORE_URL": sqlite}


def test_a_job_runtime_env_carries_no_secret_and_the_driver_still_gets_them(tmp_path, monkeypatch):
    url = f"postgresql+psycopg://sweeps:{PASSWORD}@db.example:5432/sweeps"
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)  # W&B's own variable, read by Settings too
    settings = Settings(results_dir=tmp_path / "results", store_url=url, api_token=TOKEN)
    env = Jobs(settings, Store(f"sqlite:///{tmp_path / 's.db'}"))._runtime_env()["env_vars"]
    _no_secret_in(repr(env), "the runtime env")
    assert "CIFAR_SWEEPS_STORE_URL" not in env and env["CIFAR_SWEEPS_MIN_FREE_MB"] == "200.0"
    folder = Path(env[SECRETS_DIR_ENV])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    # The driver, started with that runtime env and nothing else:
    for k in ("WANDB_API_KEY", "CIFAR_SWEEPS_STORE_URL", "CIFAR_SWEEPS_API_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(folder))
    driver = load_settings()
    assert driver.store_url == url and driver.wandb_api_key.get_secret_value() == WANDB_KEY
    assert driver.api_token == ""  # the token stays with the service
    assert WANDB_KEY not in repr(driver)


def test_with_the_clusters_own_mounted_secrets_nothing_is_written_to_the_shared_volume(tmp_path):
    """Kubernetes: the Ray pods mount the Secret (CIFAR_SWEEPS_CLUSTER_SECRETS_DIR); the API
    tells jobs to read it there and copies no secret onto the results volume."""
    url = f"postgresql+psycopg://sweeps:{PASSWORD}@db.example:5432/sweeps"
    settings = Settings(
        results_dir=tmp_path / "results",
        store_url=url,
        cluster_paths="shared",
        cluster_secrets_dir="/var/run/secrets/cifar-sweeps",
    )
    env = Jobs(settings, Store(f"sqlite:///{tmp_path / 's.db'}"))._runtime_env()["env_vars"]
    _no_secret_in(repr(env), "the runtime env")
    assert env[SECRETS_DIR_ENV] == "/var/run/secrets/cifar-sweeps"
    assert not (tmp_path / "results" / ".secrets").exists()


def test_every_setting_reaches_the_driver(tmp_path, monkeypatch):
    """The runtime env is built from Settings' own fields: a driver started with it (and the
    secret files) reads the service's settings back, every field, none forgotten."""
    for name in list(os.environ):
        if name.startswith(("CIFAR_SWEEPS_", "WANDB_")):
            monkeypatch.delenv(name)
    service = Settings(
        results_dir=tmp_path / "results",
        data="synthetic:64",
        min_free_mb=40,
        max_epochs=7,
        allowed_hosts=["a.example"],
        wandb=True,
        wandb_mode="offline",
        wandb_project="p",
        wandb_api_key=WANDB_KEY,
        storage_path=str(tmp_path / "ray"),
        cluster_lost_after_s=12.5,
        store_url=f"postgresql+psycopg://sweeps:{PASSWORD}@db/sweeps",
        test_hooks=True,
        api_token=TOKEN,
    )
    env = Jobs(service, Store(f"sqlite:///{tmp_path / 's.db'}"))._runtime_env()["env_vars"]
    _no_secret_in(repr(env), "the runtime env")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    driver = load_settings()
    differs = {n for n in Settings.model_fields if getattr(driver, n) != getattr(service, n)}
    assert differs == {"api_token"}  # the token stays with the service; all else arrives


def _pg_or_skip():
    from tests.helpers.postgres import PrivatePostgres, pg_bin

    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed")
    return PrivatePostgres().start()


def _head_procs(results: Path) -> list[psutil.Process]:
    """Processes of the head the service started for `results`: found by the environment
    that head's processes inherit (its marker and this test's results folder)."""
    out = []
    for p in psutil.process_iter():
        try:
            env = p.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if env.get(HEAD_MARKER) and env.get("CIFAR_SWEEPS_RESULTS_DIR") == str(results):
            out.append(p)
    return out


def _wandb_actor_up(results: Path) -> bool:
    for p in _head_procs(results):
        try:
            if "Wandb" in " ".join(p.cmdline()):
                return True
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return False


@pytest.mark.slow
def test_the_services_own_head_and_its_jobs_hold_no_secret_and_ctrl_c_ends_every_process(tmp_path):
    from ray.job_submission import JobSubmissionClient

    pg = _pg_or_skip()
    results, home = tmp_path / "results", tmp_path / "home"
    home.mkdir()
    port, dashboard = free_port(), f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "CIFAR_SWEEPS_"))}
    env.update(
        HOME=str(home),
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        CIFAR_SWEEPS_RESULTS_DIR=str(results),
        CIFAR_SWEEPS_DATA="synthetic:600",
        CIFAR_SWEEPS_DASHBOARD_URL=dashboard,
        CIFAR_SWEEPS_API_TOKEN=TOKEN,
        WANDB_API_KEY=WANDB_KEY,
        CIFAR_SWEEPS_WANDB_MODE="offline",  # W&B on (the spec says so) with no network
        CIFAR_SWEEPS_STORE_URL=pg.url().replace("sweeps@", f"sweeps:{PASSWORD}@"),
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        svc = subprocess.Popen(
            [str(VENV_BIN / "cifar-sweeps"), "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        spec = {
            "name": "secret-free",
            "num_samples": 1,
            "scheduler": {"type": "fifo"},
            "fixed": {"model": "mlp", "epochs": 40, "batch_size": 32},
            "params": {"lr": {"type": "choice", "values": [0.01, 0.02]}},
            "wandb": True,  # Ray's W&B callback copied the key into its logging actors' runtime env
        }
        r = httpx.post(f"{base}/sweeps", json=spec, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert r.status_code == 201, r.text
        sweep = r.json()
        while time.time() < deadline and httpx.get(f"{base}/sweeps/{sweep['id']}").json()["status"] != "running":
            time.sleep(0.5)
        while time.time() < deadline and not _wandb_actor_up(results):
            time.sleep(0.5)  # the trial's W&B logging actor is up
        info = JobSubmissionClient(dashboard).get_job_info(sweep["ray_job_id"])
        _no_secret_in(str(info.runtime_env) + info.entrypoint, "the job's runtime env")
        procs = _head_procs(results)
        names = " ".join(p.name() for p in procs)
        assert "raylet" in names and "gcs_server" in names, names
        assert _wandb_actor_up(results), "no W&B logging actor ran"
        for p in procs:  # the GCS, raylet, dashboard, agents, workers, W&B's actor and the job's driver
            try:
                with_env, name = p.environ(), p.name()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # a worker that ended since it was listed
            _no_secret_in(repr(with_env), f"the environment of {name} (pid {p.pid})")
    finally:
        svc.send_signal(signal.SIGINT)  # Ctrl-C
        svc.wait(60)
        try:
            time.sleep(2)
            left = [
                f"{p.pid} {p.name()}"
                for p in _head_procs(results)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
            ]
            assert not left, f"the head left processes behind: {left}"
        finally:
            for p in _head_procs(results):  # only this test's head, if the assertion failed
                p.kill()
            pg.stop()
    _no_secret_in(log.read_text(), "the service's log")
