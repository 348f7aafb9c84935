"""Hosts and links: a Host header the service was not told to answer is refused before
any route or cache sees it; links never come from a request's Host, so one poisoned request
can't reach another client through the response cache; the page gets its CSP and no answer
can be framed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.service.middleware import LOOPBACK_HOSTS
from cifar_sweeps.service.serve import serving_settings
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs
from tests.helpers.specs import GOOD


def _app(tmp_path, **over):
    settings = Settings(results_dir=tmp_path, cache_ttl_s=60, **over)
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep(GOOD, "synthetic:100", "v")
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp", "lr": 0.01}, 2)
    store.trial_checkpoint(tid, str(tmp_path / "model.pt"))
    return TestClient(create_app(settings, FakeJobs(store)), base_url="http://127.0.0.1:8000"), tid


def test_serving_on_loopback_answers_loopback_names_only():
    assert serving_settings(Settings(), "127.0.0.1").allowed_hosts == list(LOOPBACK_HOSTS)
    assert serving_settings(Settings(), "0.0.0.0").allowed_hosts == []  # bound wide: set it yourself
    assert serving_settings(Settings(allowed_hosts=["sweeps.lab"]), "127.0.0.1").allowed_hosts == ["sweeps.lab"]


@pytest.mark.parametrize("path", ["/leaderboard", "/sweeps", "/", "/health"])
def test_a_poisoned_host_is_refused_and_the_next_client_gets_clean_links(tmp_path, path):
    client, tid = _app(tmp_path, allowed_hosts=list(LOOPBACK_HOSTS))
    r = client.get(path, headers={"Host": "evil.example"})
    assert r.status_code == 400
    r = client.post("/sweeps", json=GOOD, headers={"Host": "evil.example:8000"})  # a rebinding page's POST
    assert r.status_code == 400
    board = client.get("/leaderboard").json()
    assert board["items"][0]["checkpoint_url"] == f"/trials/{tid}/checkpoint"
    assert "evil" not in client.get("/leaderboard").text


def test_links_never_come_from_the_host_header_even_where_any_host_is_answered(tmp_path):
    client, tid = _app(tmp_path)  # no allowed hosts: any Host is answered
    poisoned = client.get("/leaderboard", headers={"Host": "evil.example"}).json()
    clean = client.get("/leaderboard").json()  # the same view, from the response cache
    for board in (poisoned, clean):
        assert board["items"][0]["checkpoint_url"] == f"/trials/{tid}/checkpoint"
    client, tid = _app(tmp_path / "b", public_base_url="https://sweeps.example.org/")
    body = client.get("/leaderboard", headers={"Host": "evil.example"}).json()
    assert body["items"][0]["checkpoint_url"] == f"https://sweeps.example.org/trials/{tid}/checkpoint"
    sweep = client.get("/sweeps").json()["items"][0]
    assert sweep["links"]["self"].startswith("https://sweeps.example.org/sweeps/")


def test_the_page_has_its_csp_and_nothing_can_be_framed(tmp_path):
    client, _ = _app(tmp_path)
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    for path in ("/", "/leaderboard", "/static/app.js"):
        r = client.get(path)
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
