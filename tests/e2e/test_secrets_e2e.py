"""The service's own Ray head and its jobs hold no secret, and Ctrl-C ends every process it
started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from cifar_sweeps.cluster.connection import HEAD_MARKER
from tests.helpers.paths import REPO
from tests.helpers.ray_head import VENV_BIN, free_port
from tests.helpers.secrets import PASSWORD, TOKEN, WANDB_KEY, no_secret_in


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
        no_secret_in(str(info.runtime_env) + info.entrypoint, "the job's runtime env")
        procs = _head_procs(results)
        names = " ".join(p.name() for p in procs)
        assert "raylet" in names and "gcs_server" in names, names
        assert _wandb_actor_up(results), "no W&B logging actor ran"
        for p in procs:  # the GCS, raylet, dashboard, agents, workers, W&B's actor and the job's driver
            try:
                with_env, name = p.environ(), p.name()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # a worker that ended since it was listed
            no_secret_in(repr(with_env), f"the environment of {name} (pid {p.pid})")
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
    no_secret_in(log.read_text(), "the service's log")
