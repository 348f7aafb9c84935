"""Secrets stay out of Ray: a job's runtime env (shown by the Jobs API and the dashboard)
and the environment of every process of a head the service starts hold no store password,
W&B key or API token; the driver still gets them, from files only this user reads. And a
head the service started leaves no process behind when the service is interrupted."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cifar_sweeps.cluster.connection import head_environment
from cifar_sweeps.cluster.jobs import Jobs
from cifar_sweeps.settings import SECRETS_DIR_ENV, Settings, load_settings
from cifar_sweeps.store.queries import Store
from tests.helpers.secrets import PASSWORD, TOKEN, WANDB_KEY, no_secret_in


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
    no_secret_in(repr(env), "the runtime env")
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
    no_secret_in(repr(env), "the runtime env")
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
    no_secret_in(repr(env), "the runtime env")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    driver = load_settings()
    differs = {n for n in Settings.model_fields if getattr(driver, n) != getattr(service, n)}
    assert differs == {"api_token"}  # the token stays with the service; all else arrives
