"""The second round of hardening, each finding as the request that showed it, against a real
`cifar-sweeps serve` on loopback with no token (the default): what it answers now."""

from __future__ import annotations

import time

import httpx
import pytest

from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from tests.helpers.served import loopback_service

pytestmark = pytest.mark.integration
SPEC = {
    "name": "h",
    "search": {"algorithm": "random"},
    "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    "fixed": {"model": "mlp", "epochs": 2, "batch_size": 64},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server whose store URL carries a password-like secret in its path: a 404 must not
    show the store's URL or any local path."""
    with loopback_service(tmp_path_factory.mktemp("hard"), "results-s3cr3t") as (base, results):
        yield base, results


def _spec(**over) -> dict:
    out = {**SPEC}
    for k, v in over.items():
        out[k] = {**SPEC.get(k, {}), **v} if isinstance(v, dict) else v
    return out


def test_a_reduction_factor_just_above_1_is_refused_at_once(server):
    base, _ = server
    for route in ("/sweeps/plan", "/sweeps"):
        t0 = time.monotonic()
        r = httpx.post(base + route, json=_spec(scheduler={"reduction_factor": 1.00000001}), timeout=30)
        assert r.status_code == 422 and "scheduler.reduction_factor" in r.json()["detail"], r.text
        assert time.monotonic() - t0 < 20  # was: no answer in 60 s, 900 MB of rungs
    assert httpx.get(base + "/sweeps").json()["total"] == 0


def test_numbers_are_strict_and_a_choice_has_one_type(server):
    base, _ = server
    r = httpx.post(base + "/sweeps/plan", json=_spec(fixed={"epochs": "100000"}), timeout=30)
    assert r.status_code == 422 and "fixed.epochs" in r.json()["detail"], r.text
    mixed = _spec(params={"batch_size": {"type": "choice", "values": [32, "64"]}})
    for route in ("/sweeps/plan", "/sweeps"):
        r = httpx.post(base + route, json=mixed, timeout=30)
        assert r.status_code == 422, r.text  # was a 500
        assert "params.batch_size" in r.json()["detail"] and "one type" in r.json()["detail"]


def test_a_404_names_neither_the_store_nor_a_local_path(server):
    base, results = server
    r = httpx.get(base + "/sweeps/sw-doesnotexist")
    assert r.status_code == 404 and "sw-doesnotexist" in r.json()["detail"]
    for secret in ("sqlite", "s3cr3t", str(results)):
        assert secret not in r.text and secret not in str(r.headers)


def test_a_cross_site_form_or_origin_cant_stop_a_sweep(server):
    base, results = server
    store = get_store(f"sqlite:///{results / 'cifar_sweeps.db'}")
    sweep = store.create_sweep(_spec(), "synthetic:500", "v")
    evil = {"Origin": "http://evil.example"}
    r = httpx.post(
        f"{base}/sweeps/{sweep.id}/stop",
        headers={**evil, "Content-Type": "application/x-www-form-urlencoded"},
        content=b"",
    )
    assert r.status_code == 415, r.text  # was 200, and the sweep stopped
    r = httpx.post(f"{base}/sweeps/{sweep.id}/stop", headers=evil)
    assert r.status_code == 403 and "cross-site" in r.json()["detail"]
    r = httpx.post(f"{base}/sweeps/{sweep.id}/stop", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert store.sweep(sweep.id).status == "queued"  # nothing changed
    same_site = {"Origin": base}
    r = httpx.post(f"{base}/sweeps/{sweep.id}/stop", headers=same_site)  # the page itself
    assert r.status_code == 200 and store.sweep(sweep.id).status == "stopped"
    other = store.create_sweep(_spec(), "synthetic:500", "v")
    assert httpx.post(f"{base}/sweeps/{other.id}/stop").status_code == 200  # `curl -X POST`, no body


def test_pareto_of_one_metric_against_itself_is_refused(server):
    base, results = server
    store = get_store(f"sqlite:///{results / 'cifar_sweeps.db'}")
    sweep = store.create_sweep(_spec(), "synthetic:500", "v")
    lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp"}, 1)
    r = httpx.get(f"{base}/sweeps/{sweep.id}/pareto", params={"x": "params", "y": "params"})
    assert r.status_code == 422 and "two different metrics" in r.json()["detail"]


def test_trials_that_cant_fit_the_nodes_memory_are_a_422_with_the_figures(server):
    base, _ = server
    big = _spec(
        data={"image_size": 512},
        fixed={"model": "airbench", "epochs": 2, "batch_size": 4096},
        max_concurrent_trials=2,
        resources_per_trial={"cpu": 1},
    )
    before = httpx.get(base + "/sweeps").json()["total"]
    r = httpx.post(base + "/sweeps", json=big, timeout=60)
    assert r.status_code == 422, r.text  # was: a warning, and the sweep stored
    detail = r.json()["detail"]
    assert "MiB" in detail and "over the node's" in detail and "max_concurrent_trials" in detail
    assert httpx.get(base + "/sweeps").json()["total"] == before


def test_a_json_body_with_no_content_type_is_refused_whatever_fastapi_does(server):
    base, _ = server
    import json

    r = httpx.post(base + "/sweeps/plan", content=json.dumps(SPEC).encode(), headers={"Content-Type": ""})
    assert r.status_code == 415 and "Content-Type" in r.json()["detail"], r.text
