"""Hearing when a sweep ends: the operator's webhooks (settings `webhooks`, hosts allow-listed)
are told once when a sweep succeeds, fails or is stopped, with a JSON payload (or Slack's
incoming-webhook form) signed with HMAC-SHA256 in `X-Cifar-Sweeps-Signature: sha256=<hex>`.
Each delivery runs in a thread of its own, retried with backoff (1, 2, 4, 8 s): the service
never waits on a receiver. A spec may choose among the webhooks by name (`notify`), never
give a URL. The API's sync loop announces the sweeps it finds ended (the store's
notified_at, claimed with a conditional update, keeps it to once across restarts and
processes); `cifar-sweeps run` announces its own sweep as it ends."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any

from pydantic import BaseModel

from cifar_sweeps.errors import NotFound
from cifar_sweeps.store.states import SweepStatus

log = logging.getLogger(__name__)
ENDS = frozenset({SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.STOPPED})
TRIES = 5
BACKOFF_S = 1.0  # doubled after each failed try
TIMEOUT_S = 5.0  # per try
SIGNATURE = "X-Cifar-Sweeps-Signature"


class Delivery(BaseModel):
    webhook: str
    delivered: bool
    status: int | None = None  # the receiver's HTTP status, last try
    tries: int
    error: str | None = None


def payload(sweep, best: Any = None, event: str = "sweep.ended") -> dict[str, Any]:
    return {
        "event": event,
        "sweep_id": sweep.id,
        "name": sweep.name,
        "status": sweep.status,
        "reason": sweep.reason,
        "created_at": sweep.created_at.isoformat() + "Z" if sweep.created_at else None,
        "finished_at": sweep.finished_at.isoformat() + "Z" if sweep.finished_at else None,
        "best": None
        if best is None
        else {"trial_id": best.id, "model": best.model, "val_acc": best.val_acc, "test_acc": best.test_acc},
    }


def body_for(fmt: str, data: dict[str, Any]) -> bytes:
    if fmt == "slack":
        best = data.get("best") or {}
        score = f"; best {best.get('trial_id')}: val_acc {best.get('val_acc')}" if best else ""
        text = f"cifar-sweeps: sweep {data['name']} ({data['sweep_id']}) {data['status']}{score}"
        return json.dumps({"text": text}).encode()
    return json.dumps(data, sort_keys=True).encode()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(name: str, hook, body: bytes, secret: str, tries: int = TRIES, backoff_s: float = BACKOFF_S) -> Delivery:
    """POST `body` to the hook, signed; a 2xx ends it, anything else is tried again later."""
    import httpx

    headers = {"Content-Type": "application/json", "X-Cifar-Sweeps-Event": "sweep"}
    if secret:
        headers[SIGNATURE] = sign(secret, body)
    status, error = None, None
    for i in range(tries):
        try:
            r = httpx.post(hook.url, content=body, headers=headers, timeout=TIMEOUT_S, follow_redirects=False)
            status, error = r.status_code, None
            if 200 <= r.status_code < 300:
                return Delivery(webhook=name, delivered=True, status=status, tries=i + 1)
        except httpx.HTTPError as e:
            error = type(e).__name__
        if i + 1 < tries:
            time.sleep(backoff_s * 2**i)
    log.warning("webhook %s: not delivered after %d tries (status %s, %s)", name, tries, status, error)
    return Delivery(webhook=name, delivered=False, status=status, tries=tries, error=error)


def hooks_for(sweep, settings) -> list[str]:
    chosen = (sweep.spec or {}).get("notify")
    return [n for n in (chosen if chosen is not None else sorted(settings.webhooks)) if n in settings.webhooks]


def notify_ended(store, settings, wait_s: float = 0.0) -> list[threading.Thread]:
    """Announce every ended sweep not announced yet, each delivery in a thread of its own;
    `wait_s` > 0 waits for them that long (the CLI's end), else returns at once."""
    if not settings.webhooks:
        return []
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    threads = []
    for sweep in store.claim_notifications(ENDS):
        data = payload(sweep, store.sweep_summary(sweep.id)[1])  # its best trial (a refit first)
        for name in hooks_for(sweep, settings):
            hook = settings.webhooks[name]
            t = threading.Thread(target=deliver, args=(name, hook, body_for(hook.format, data), secret), daemon=True)
            t.start()
            threads.append(t)
    deadline = time.monotonic() + wait_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return threads


def send_test(settings, name: str) -> Delivery:
    """One test event to the webhook `name`, tried once, answered with what the receiver said."""
    hook = settings.webhooks.get(name)
    if hook is None:
        raise NotFound(
            f"no webhook named {name[:40]!r}; the operator's: {', '.join(sorted(settings.webhooks)) or 'none'}"
        )
    data = {"event": "test", "sweep_id": None, "name": "test", "status": "test", "reason": None, "best": None}
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    return deliver(name, hook, body_for(hook.format, data), secret, tries=1)
