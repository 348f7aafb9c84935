"""The submit-time model check (modelcheck.py), in its own process as the service runs it:
a plug-in model that can't be built, refuses an argument, or gives logits of the wrong shape
is a 422 naming the field, with nothing stored; a good one's parameter count is in the plan."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.schema import parse_spec
from tests.helpers.jobs import FakeJobs

pytestmark = pytest.mark.integration


def _spec(model: str, model_args: dict | None = None, **params) -> dict:
    return {
        "name": "check",
        "search": {"algorithm": "random"},
        "fixed": {"model": model, "epochs": 1, **({"model_args": model_args} if model_args else {})},
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


def test_the_model_check_runs_plugin_code_isolated(plugin, tmp_path, monkeypatch):
    """Plug-in code in the check's child: no secret in its environment, a temporary working
    directory that is not on its import path, its data memory capped, a process group of its
    own, hubs offline; the request (the spec's builds) travelled on stdin."""
    import json as js

    from cifar_sweeps.errors import SpecError
    from cifar_sweeps.subprocs import CHILD_MEMORY_MB
    from cifar_sweeps.sweepspec.modelcheck import check_models

    for k in ("CIFAR_SWEEPS_API_TOKEN", "WANDB_API_KEY", "CIFAR_SWEEPS_STORE_URL"):
        monkeypatch.setenv(k, "a-secret-value")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as err:
        check_models(parse_spec(_spec("spy")))
    text = str(err.value)
    seen = js.loads(text[text.index("SPY") + 3 : text.index("YPS")])
    assert seen["secrets"] == [] and seen["hub_offline"] == "1" and seen["own_group"]
    assert seen["cwd"] != str(tmp_path) and not seen["path_has_cwd"]
    assert seen["data_limit_mb"] == CHILD_MEMORY_MB


def test_the_model_check_refuses_what_it_cant_check_builds_with_the_datas_classes_and_remembers(
    plugin, tmp_path, monkeypatch
):
    from cifar_sweeps.analysis.plan import class_count
    from cifar_sweeps.errors import SpecError
    from cifar_sweeps.sweepspec import modelcheck

    many = {"model_args.channels": {"type": "choice", "values": list(range(4, 64))}}  # 60 values
    many["model_args.extra"] = {"type": "choice", "values": [1, 2]}  # 120 builds: past the 64 checked
    with pytest.raises(SpecError, match="more than 64 distinct builds"):
        modelcheck.plugin_points(parse_spec(_spec("raises", **many)))
    for c in ("a", "b", "c"):
        (tmp_path / "imgs" / "train" / c).mkdir(parents=True)
    assert class_count(str(tmp_path / "imgs")) == 3 and class_count("synthetic:100") == 10
    spec = parse_spec(_spec("widenet", model_args={"channels": 8}))
    assert modelcheck.check_models(spec, 3) == {"widenet": 8 * 3 * 9 + 8 + 8 * 3 + 3}  # 3 classes: Linear(8, 3)
    real = modelcheck.run_torch
    monkeypatch.setattr(modelcheck, "run_torch", lambda *a, **k: pytest.fail("a remembered check ran again"))
    assert modelcheck.check_models(spec, 3) == {"widenet": 8 * 3 * 9 + 8 + 8 * 3 + 3}
    bad = parse_spec(_spec("raises", model_args={"depth": 3}))
    monkeypatch.setattr(modelcheck, "run_torch", real)
    for _ in range(2):  # the failure is remembered too: the second one starts no process
        with pytest.raises(SpecError, match="depth 3 is too deep"):
            modelcheck.check_models(bad)
        monkeypatch.setattr(modelcheck, "run_torch", lambda *a, **k: pytest.fail("a remembered failure ran again"))


def test_an_undeclared_builder_gets_numbers_and_booleans_only_over_http(api):
    """`raises` declares no arguments: a string (a path a loader could open) is refused over
    HTTP, a number passes; the declared `widenet` is checked against its declaration."""
    client, store = api
    for url in ("/sweeps/plan", "/sweeps"):
        body = _spec("raises", model_args={"path": "/etc/passwd"})
        r = client.post(url, json=body)
        assert r.status_code == 422 and "declares no arguments, so over HTTP it takes numbers" in r.json()["detail"]
        body = _spec("raises", **{"model_args.src": {"type": "choice", "values": ["http://x.example/w"]}})
        r = client.post(url, json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith("params.model_args.src"), r.text
    assert store.list_sweeps()[1] == 0
    assert client.post("/sweeps/plan", json=_spec("raises", model_args={"depth": 2})).status_code == 200
