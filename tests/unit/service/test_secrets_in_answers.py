"""No secret or internal path in any answer: with a known API token, W&B key and store
password set, every route's error paths (404, 409, 422, 503, and a job's log tail in a
sweep's error) are driven, and no body or header holds any of them."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs
from tests.helpers.specs import GOOD

TOKEN, KEY, PASSWORD = "tok-3f9a8c2e71", "wandb-key-5b6c7d8e9f", "pg-pa55-7a1b2c"


@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "ray-tok-99aa88bb")
    settings = Settings(results_dir=tmp_path / "results", api_token=TOKEN, wandb_api_key=KEY)
    store = get_store(settings.resolved_store_url())
    client = TestClient(create_app(settings, FakeJobs(store, up=False)), raise_server_exceptions=False)
    # The store's URL as the service would hold a PostgreSQL one: its password is a secret too.
    settings.store_url = f"postgresql://sweeps:{PASSWORD}@db.internal/sweeps"
    return client, store, settings


def _paths(client) -> list[tuple[str, str]]:
    out = []
    for path, ops in client.app.openapi()["paths"].items():
        for method in ops:
            out.append((method.upper(), re.sub(r"\{[^}]+\}", "sw-nope", path)))
    return out


def test_no_answer_holds_a_secret_or_a_local_path(api, tmp_path):
    client, store, settings = api
    secrets = [TOKEN, KEY, PASSWORD, "ray-tok-99aa88bb", str(tmp_path)]
    # A sweep whose job failed with its log tail full of secrets, and one to conflict with.
    sweep = store.create_sweep(dict(GOOD), "synthetic:100", "v")
    lifecycle.fail(store, sweep.id, lifecycle.Reason.JOB_FAILED, f"env WANDB_API_KEY={KEY} url {settings.store_url}")
    answers = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in _paths(client):
        for headers in ({}, auth, {"Authorization": "Bearer wrong"}):
            for body in (None, {"name": "../x", "fixed": {"model": "nope"}}, GOOD):
                r = client.request(method, path, headers=headers, json=body)
                answers.append((method, path, r.status_code, r.text, dict(r.headers)))
    for method, path in (("GET", f"/sweeps/{sweep.id}"), ("POST", f"/sweeps/{sweep.id}/stop")):
        r = client.request(method, path, headers=auth)  # the failed sweep's error; stopping it: 409
        answers.append((method, path, r.status_code, r.text, dict(r.headers)))
    assert "[redacted]" in client.get(f"/sweeps/{sweep.id}").json()["error"]
    statuses = {a[2] for a in answers}
    assert {401, 404, 409, 422, 503} <= statuses, statuses
    for method, path, status, text, headers in answers:
        for secret in secrets:
            assert secret not in text and secret not in str(headers), (method, path, status, secret, text[:300])
