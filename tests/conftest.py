from __future__ import annotations

import os

import pytest
import torch

from cifar_sweeps.training.data import split_train_val, synthetic
from tests.helpers.plugins import plugin  # noqa: F401 (a fixture: a fake plug-in distribution installed)
from tests.helpers.ray_head import RayHead

torch.set_num_threads(1)  # tests run beside Ray workers on 2 cores


# The tiers (pyproject.toml's markers): `slow` tests run a real Ray head; `integration`
# tests start PostgreSQL, build a wheel, mount a filesystem or run a process of the
# project; every other test is `unit` (pure functions and the in-process app: seconds).
INTEGRATION_MODULES = {
    "test_wheel",
    "test_docker",
    "test_deploy",
    "test_storage_faults",
    "test_schemathesis",
    "test_migrations",
    "test_hardening",  # a served process, and answers in time
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") or item.get_closest_marker("integration"):
            continue
        if item.get_closest_marker("realdata"):  # decodes 60,000 images: never in the unit tier
            item.add_marker(pytest.mark.integration)
            continue
        module = item.module.__name__.rsplit(".", 1)[-1]
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (
            module in INTEGRATION_MODULES
            or {"postgres", "ray_head"} & set(item.fixturenames)
            or "postgres" in params.values()
        ):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def tiny_splits():
    return split_train_val(synthetic(600, 200, seed=0), 0.2, seed=0)


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    d = tmp_path / "results"
    monkeypatch.setenv("CIFAR_SWEEPS_RESULTS_DIR", str(d))
    monkeypatch.delenv("CIFAR_SWEEPS_STORE_URL", raising=False)
    return d


def real_archive() -> str | None:
    path = os.environ.get("CIFAR10_ARCHIVE")
    return path if path and os.path.exists(path) else None


# Ray 2.60 reads an auth token from ~/.ray/auth_token or the environment when token auth is
# on; the tests run their own clusters without it, so a stale token from elsewhere can't
# make `ray job submit` fail.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.pop("RAY_AUTH_TOKEN", None)
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.pop("RAY_ADDRESS", None)


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """One real Ray head (`ray start --head`) for every end-to-end test of the session."""
    head = RayHead(tmp_path_factory.mktemp("ray")).start()
    yield head
    head.stop()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on a private port and data folder (skipped if absent)."""
    from tests.helpers.postgres import PrivatePostgres, pg_bin

    if pg_bin() is None:
        pytest.skip("Debian's postgresql is not installed")
    pg = PrivatePostgres().start()
    yield pg
    pg.stop()
