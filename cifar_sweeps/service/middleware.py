"""The API's middleware (pure ASGI): security headers and the page's CSP, the body limit,
the cross-site guard, the test-only fault hooks, and their order (`add_middleware`)."""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from cifar_sweeps.errors import BodyTooLarge
from cifar_sweeps.service.cache import ResponseCache, ViewVersions
from cifar_sweeps.settings import Settings
from cifar_sweeps.sweepspec.schema import TEST_HOOKS

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


# The page loads only its own files, and runs no eval: plotly.js's strict build draws its
# WebGL charts (parallel coordinates) from precompiled shaders; its SVG charts set inline
# styles, hence style-src 'unsafe-inline'.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """No framing and no MIME sniffing for every answer; the page also gets its CSP (the
    API docs pages run their inline start-up scripts, so they get none)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        page = scope["path"] == "/"

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if page:
                    headers.append((b"content-security-policy", PAGE_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413, whether or not Content-Length is
    sent (a chunked body is counted as it arrives)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _too_large(self.max_bytes, send)
        seen = 0

        async def counted():
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge()
            return msg

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            await _too_large(self.max_bytes, send)


class CrossSite:
    """Refuses what a page on another site can make a browser send. A form or text body
    (the content types a cross-site form or a "simple" request may carry without a CORS
    preflight) is refused on every route, multipart except on predict (its upload); and with
    no API token, a mutation whose Origin is another host, or whose Sec-Fetch-Site says
    cross-site, is refused. A POST with no body and no Origin (`curl -X POST .../stop`), the
    page (same origin) and the CLI keep working. With a token, a browser can't attach it to
    a cross-site request, so the token is the guard."""

    FORM_TYPES = (b"application/x-www-form-urlencoded", b"text/plain", b"multipart/form-data")

    def __init__(self, app, token_set: bool):
        self.app, self.token_set = app, token_set

    # GETs that start work (an export holds the one torch-process slot for up to 300 s) or
    # hand out a model: an <img> tag on another site could otherwise fire them.
    WORK_GETS = ("/export", "/checkpoint")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] in ("GET", "HEAD") and scope["path"].endswith(self.WORK_GETS):
            if _cross_site(dict(scope.get("headers") or [])):
                return await _refuse(send, 403, "a page of another site can't fetch or export a model here")
            return await self.app(scope, receive, send)
        if scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        upload = kind == b"multipart/form-data" and scope["path"].endswith("/predict")
        sized = headers.get(b"content-length", b"0") not in (b"", b"0") or b"transfer-encoding" in headers
        if sized and not kind:  # older FastAPI read such a body as JSON: a form could post one
            return await _refuse(send, 415, "a body with no Content-Type is not taken; send application/json")
        if kind in self.FORM_TYPES and not upload:
            want = "multipart/form-data (images)" if scope["path"].endswith("/predict") else "application/json"
            return await _refuse(send, 415, f"a {kind.decode()} body is not taken here; send {want}")
        if not self.token_set and _cross_site(headers):
            return await _refuse(
                send, 403, "a cross-site request can't change anything here (set CIFAR_SWEEPS_API_TOKEN to allow it)"
            )
        await self.app(scope, receive, send)


def _cross_site(headers: dict[bytes, bytes]) -> bool:
    """The request comes from a page of another site: its Origin's host:port is not the
    Host it was sent to, or the browser says so (Sec-Fetch-Site: cross-site)."""
    if headers.get(b"sec-fetch-site", b"").lower() == b"cross-site":
        return True
    origin = headers.get(b"origin")
    if origin is None:
        return False  # a terminal, a script: no browser page behind it
    if origin == b"null":
        return True  # a sandboxed frame or a file: never this service's own page
    host = origin.split(b"://", 1)[-1].rstrip(b"/").lower()
    return host != headers.get(b"host", b"").lower()


class FaultHooks:
    """Only with Settings.test_hooks (tests): the spec knows the fault-injection keys while a
    request is validated."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        token = TEST_HOOKS.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            TEST_HOOKS.reset(token)


def add_middleware(app: FastAPI, settings: Settings, store) -> None:
    """Innermost first: the cache, the body limit, the cross-site guard (a refusal reaches no
    route and clears nothing), security headers, then the Host check (outermost)."""
    app.add_middleware(
        ResponseCache, ttl_s=settings.cache_ttl_s, version=ViewVersions(store), cheap_version=store.cheap_versions
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CrossSite, token_set=bool(settings.api_token))
    app.add_middleware(SecurityHeaders)
    if settings.allowed_hosts:  # outermost: a refused Host reaches neither the cache nor a route
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _too_large(max_bytes: int, send) -> None:
    body = json.dumps({"detail": f"request body is over the limit of {max_bytes} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
