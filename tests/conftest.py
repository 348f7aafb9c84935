from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cifar_sweeps.training.data import split_train_val, synthetic
from tests.helpers.plugins import plugin  # noqa: F401 (a fixture: a fake plug-in distribution installed)
from tests.helpers.ray_head import THROUGHPUTS_ENV, RayHead

torch.set_num_threads(1)  # tests run beside Ray workers on 2 cores


# The tiers are folders (pyproject.toml's markers follow them): tests/unit/<layer>/ holds pure
# functions and the in-process app (seconds, no process started); tests/integration/ starts
# PostgreSQL, builds a wheel, mounts a filesystem or runs a process of the project;
# tests/e2e/ runs real Ray heads (`slow`). A unit test that needs more is refused at
# collection, so the unit tier stays fast by construction.
TESTS = Path(__file__).resolve().parent
HEAVY_FIXTURES = {"postgres", "ray_head"}


def tier_of(item: pytest.Item) -> str:
    return Path(str(item.path)).resolve().relative_to(TESTS).parts[0]


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(item)
        heavy = HEAVY_FIXTURES & set(item.fixturenames) or "postgres" in _params(item)
        if tier == "unit":
            if heavy or any(item.get_closest_marker(m) for m in ("slow", "integration", "realdata")):
                raise pytest.UsageError(
                    f"{item.nodeid} starts a process or a server: it belongs in tests/integration or tests/e2e"
                )
            item.add_marker(pytest.mark.unit)
        elif not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.integration)


def _params(item: pytest.Item) -> list:
    return list(getattr(getattr(item, "callspec", None), "params", {}).values())


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


@pytest.fixture(scope="session", autouse=True)
def _throughputs_of_this_run(tmp_path_factory):
    """The run's shared throughput file (helpers/ray_head.shared_throughputs) in pytest's own
    temp root of this run, which every xdist worker shares and pytest cleans up later."""
    base = tmp_path_factory.getbasetemp()
    base = base.parent if base.name.startswith("popen-gw") else base
    os.environ[THROUGHPUTS_ENV] = str(base / "throughput.json")


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
