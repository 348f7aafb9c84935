"""Hearing when a sweep ends: a local HTTP receiver gets one signed delivery per ended sweep
(never two, across restarts), Slack's form when asked, a test event on demand; a webhook on a
host outside the allow-list is refused at start; a spec names webhooks, never URLs."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.usecases.notify import SIGNATURE, notify_ended
from tests.helpers.jobs import FakeJobs
from tests.helpers.specs import AUTH, GOOD

SECRET = "hook-secret-for-the-test"


@pytest.fixture
def receiver():
    """A local HTTP receiver: every POST's path, headers and body; it answers 500 to the
    first POST to /flaky (a retry must follow)."""
    got: list[tuple[str, dict, bytes]] = []
    flaked: list[bool] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/flaky" and not flaked:
                flaked.append(True)
                self.send_response(500)
            else:
                got.append((self.path, dict(self.headers), body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", got
    server.shutdown()


def _settings(tmp_path, base: str) -> Settings:
    return Settings(
        results_dir=tmp_path,
        api_token="s3cret-token",
        webhooks={"team": {"url": f"{base}/flaky"}, "chat": {"url": f"{base}/slack", "format": "slack"}},
        webhook_hosts=["127.0.0.1"],
        webhook_secret=SECRET,
    )


def _wait(got: list, n: int) -> None:
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_ended_sweep_is_announced_once_signed_and_retried(tmp_path, receiver):
    base, got = receiver
    settings = _settings(tmp_path, base)
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep({"name": "told"}, "synthetic:100", "v")
    running = store.create_sweep({"name": "still"}, "synthetic:100", "v")
    lifecycle.fail(store, sweep.id, lifecycle.Reason.DRIVER_ERROR, "it broke")
    notify_ended(store, settings, wait_s=20)  # the flaky receiver's 500 is retried after 1 s
    _wait(got, 2)
    by_path = {path: (headers, body) for path, headers, body in got}
    headers, body = by_path["/flaky"]
    want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE], want)
    data = json.loads(body)
    assert data["event"] == "sweep.ended" and data["sweep_id"] == sweep.id and data["status"] == "failed"
    assert sweep.id in json.loads(by_path["/slack"][1])["text"]  # Slack's incoming-webhook form
    assert running.id not in body.decode()
    notify_ended(store, settings, wait_s=2)  # again (a restart): nothing new is sent
    assert len(got) == 2


def test_a_spec_names_webhooks_and_the_test_route_delivers(tmp_path, receiver):
    base, got = receiver
    settings = _settings(tmp_path, base)
    client = TestClient(create_app(settings, FakeJobs(get_store(settings.resolved_store_url()))))
    r = client.post("/sweeps", json={**GOOD, "notify": ["nope"]}, headers=AUTH)
    assert r.status_code == 422 and "notify[0]: no webhook named 'nope'; the operator's: chat, team" in r.text
    r = client.post("/sweeps", json={**GOOD, "notify": ["http://evil.example/x"]}, headers=AUTH)
    assert r.status_code == 422  # a URL is no name
    assert client.post("/sweeps", json={**GOOD, "notify": ["chat"]}, headers=AUTH).status_code == 201
    r = client.post("/notifications/test", json={"webhook": "chat"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["delivered"] and r.json()["status"] == 204
    assert client.post("/notifications/test", json={"webhook": "chat"}).status_code == 401
    assert client.post("/notifications/test", json={"webhook": "x"}, headers=AUTH).status_code == 404
    _wait(got, 1)
    assert json.loads(got[-1][2])["text"].startswith("cifar-sweeps: sweep test")


def test_a_webhook_on_a_host_outside_the_allow_list_is_refused_at_start(tmp_path):
    with pytest.raises(
        ValidationError, match="webhooks.leak: host 'evil.example' is not in CIFAR_SWEEPS_WEBHOOK_HOSTS"
    ):
        Settings(
            results_dir=tmp_path, webhooks={"leak": {"url": "https://evil.example/x"}}, webhook_hosts=["hooks.lan"]
        )
    with pytest.raises(ValidationError, match="is no http"):
        Settings(results_dir=tmp_path, webhooks={"f": {"url": "file:///etc/passwd"}}, webhook_hosts=[""])
