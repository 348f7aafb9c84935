"""The submit-time model check (modelcheck.py), in its own process as the service runs it:
a plug-in model that can't be built, refuses an argument, or gives logits of the wrong shape
is a 422 naming the field, with nothing stored; a good one's parameter count is in the plan."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs

pytestmark = pytest.mark.integration


def _spec(model: str, **params) -> dict:
    return {
        "name": "check",
        "search": {"algorithm": "random"},
        "fixed": {"model": model, "epochs": 1},
        "params": {"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}, **params},
    }


@pytest.fixture
def api(plugin, tmp_path):  # noqa: F811
    settings = Settings(results_dir=tmp_path)
    store = get_store(settings.resolved_store_url())
    return TestClient(create_app(settings, FakeJobs(store))), store


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (
            _spec("widenet", **{"model_args.channels": {"type": "choice", "values": [8, 100]}}),
            ["params.model_args.channels", "model 'widenet' takes ints in [4, 64], got 100"],
        ),
        (
            _spec("raises", **{"model_args.depth": {"type": "randint", "low": 1, "high": 5}}),
            ["fixed.model: model 'raises'", "'depth': 4", "its builder raised ValueError: depth 4 is too deep"],
        ),
        (_spec("badshape"), ["fixed.model: model 'badshape'", "not (2, 10) logits"]),
    ],
)
def test_a_plugin_that_cant_be_built_is_a_422_naming_the_field_with_nothing_stored(api, spec, names):
    client, store = api
    r = client.post("/sweeps", json=spec)  # POST /sweeps/plan runs the same check (plan.plan_for)
    assert r.status_code == 422, r.text
    for part in names:
        assert part in r.json()["detail"], (part, r.json()["detail"])
    assert store.list_sweeps()[1] == 0


def test_a_good_plugin_is_built_on_the_meta_device_and_counted_in_the_plan(api):
    client, store = api
    spec = _spec("widenet", **{"model_args.channels": {"type": "choice", "values": [4, 16]}})
    r = client.post("/sweeps/plan", json=spec)
    assert r.status_code == 200, r.text
    # The largest of its builds: channels 16 -> conv 3*16*9 + 16, linear 16*10 + 10.
    assert r.json()["model_params"] == {"widenet": 3 * 16 * 9 + 16 + 16 * 10 + 10}
    assert store.list_sweeps()[1] == 0
    r = client.post("/sweeps", json=spec)
    assert r.status_code == 201, r.text
    assert store.sweep(r.json()["id"]).plan["model_params"] == {"widenet": 618}


def test_importing_the_package_and_listing_models_loads_neither_torch_nor_ray():
    import subprocess
    import sys

    code = (
        "import sys, cifar_sweeps as cs; names = [m['name'] for m in cs.list_models()]; "
        "assert 'airbench' in names, names; "
        "assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'heavy import'; print('light')"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "light", p.stderr[-2000:]
