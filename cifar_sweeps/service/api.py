"""The HTTP API (FastAPI): sweeps through the Ray Jobs API, the leaderboard, the page.

Routes are thin: validation lives in spec.py, storage in store.py, Ray in jobs.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from cifar_sweeps.analysis.importance import shutdown_worker
from cifar_sweeps.cluster.cluster import LocalHead
from cifar_sweeps.cluster.jobs import Jobs
from cifar_sweeps.errors import BodyTooLarge, CifarSweepsError, RayUnavailable
from cifar_sweeps.service.cache import ResponseCache
from cifar_sweeps.service.notify import notify_ended
from cifar_sweeps.service.predict_pool import shutdown_worker as shutdown_predict_worker
from cifar_sweeps.service.routes import ROUTERS
from cifar_sweeps.service.routes.deps import AppState, is_loopback
from cifar_sweeps.service.routes.page import WEB_DIR
from cifar_sweeps.settings import Settings, load_settings
from cifar_sweeps.spec.spec import TEST_HOOKS
from cifar_sweeps.store.states import ACTIVE
from cifar_sweeps.store.store import db_error_cause, get_store
from cifar_sweeps.version import __version__

SYNC_EVERY_S = 3.0

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- middleware and errors

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


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict]]:
    errors = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x != "body" and not str(x).startswith("function-")]
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        errors.append({"loc": loc, "msg": msg, "type": err.get("type", "")})
    text = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" if e["loc"] else e["msg"] for e in errors)
    return text or "invalid request", errors


# ---------------------------------------------------------------- the app

# Seconds a thread holds the GIL before one waiting for it may take it (CPython's default is
# 0.005). A light request (/health) gives the GIL up at each socket or database call and
# waits up to one interval to take it back from a CPU-bound one (a plan, a 100,000-row CSV):
# dozens of such waits at 5 ms put /health past 200 ms on two cores; at 1 ms they don't,
# for a few more thread switches in the CPU-bound work.
SWITCH_INTERVAL_S = 0.001


def _new_app(lifespan) -> FastAPI:
    """fastapi-offline's FastAPI: /docs (Swagger UI) from files of that package, served here
    (FastAPI's own loads them from a CDN: a blank page on a machine with no internet). No
    ReDoc: its page still fetches a logo from its CDN."""
    return FastAPIOffline(
        redoc_url=None,
        title="cifar-sweeps",
        version=__version__,
        lifespan=lifespan,
        description="Hyperparameter sweeps for CIFAR-10 classifiers on Ray Tune.",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )


def create_app(settings: Settings | None = None, jobs: Jobs | None = None) -> FastAPI:
    settings = settings or load_settings()
    store = get_store(settings.resolved_store_url())
    state = AppState(settings, store, jobs or Jobs(settings, store))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        task = asyncio.create_task(_sync_loop(state))
        yield
        task.cancel()
        # Here, not after uvicorn returns: uvicorn re-raises SIGTERM/SIGINT once it has shut
        # down, so code after server.run() never runs on Ctrl-C.
        for hook in app.state.shutdown_hooks:
            hook()  # each only signals its worker to end (no wait): safe on the loop, and at exit

    app = _new_app(lifespan)
    app.state.s = state
    # The worker processes: importance's (analysis/importance.py) and predict's (predict_pool.py).
    app.state.shutdown_hooks = [shutdown_worker, shutdown_predict_worker]
    _add_middleware(app, settings, store)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError):
        text, errors = _validation_message(exc)
        return JSONResponse({"detail": text, "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette's Allow lists one route's methods; a path can have several routes.
            headers["Allow"] = ", ".join(sorted(_allowed_methods(app, request.scope)))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(DBAPIError)
    async def _on_store_error(request: Request, exc: DBAPIError):
        body, status = _store_error(exc)
        return JSONResponse({"detail": _scrubbed(settings, body["detail"])}, status_code=status)

    @app.exception_handler(CifarSweepsError)
    async def _on_error(request: Request, exc: CifarSweepsError):
        detail = _scrubbed(settings, str(exc))
        return JSONResponse({"detail": detail}, status_code=exc.http_status, headers=exc.headers or None)

    if settings.test_hooks:
        app.add_middleware(FaultHooks)
    for router in ROUTERS:
        app.include_router(router)
    _document_spec_body(app)
    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def _add_middleware(app: FastAPI, settings: Settings, store) -> None:
    """Innermost first: the cache, the body limit, the cross-site guard (a refusal reaches no
    route and clears nothing), security headers, then the Host check (outermost)."""
    app.add_middleware(
        ResponseCache, ttl_s=settings.cache_ttl_s, version=store.view_version, cheap_version=store.cheap_versions
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CrossSite, token_set=bool(settings.api_token))
    app.add_middleware(SecurityHeaders)
    if settings.allowed_hosts:  # outermost: a refused Host reaches neither the cache nor a route
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)


def _scrubbed(settings: Settings, text: str) -> str:
    """An error for an answer: no secret, path, host or user (settings.scrub); the server's
    log keeps the full text when anything was taken out."""
    out = settings.scrub(text) or ""
    if out != text:
        log.warning("answered with details removed: %s", settings.redact(text))
    return out


def _store_error(exc: DBAPIError) -> tuple[dict[str, str], int]:
    """A store that can't be written or reached: a clear message (the driver's own words,
    never the SQL or its parameters), and the transaction was rolled back."""
    cause = db_error_cause(exc)
    full = any(w in cause.lower() for w in ("readonly", "read-only", "disk is full", "no space"))
    return {
        "detail": f"the store can't {'be written' if full else 'be reached'}: {cause}; nothing was changed"
    }, 507 if full else 503


def _allowed_methods(app: FastAPI, scope) -> set[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "GET"}) if hasattr(route, "methods") else (Match.NONE, None)
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= set(route.methods)
    return methods


async def _sync_loop(state: AppState) -> None:
    """Keeps sweep statuses in step with their Ray jobs and drains the queue."""
    while True:
        await asyncio.sleep(SYNC_EVERY_S)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(_sync_once, state)


def _sync_once(state: AppState) -> None:
    notify_ended(state.store, state.settings)  # sweeps that ended: their webhooks, in threads
    if state.store.count_sweeps(ACTIVE) == 0:
        return
    state.jobs.sync_all()
    with contextlib.suppress(RayUnavailable):
        state.jobs.drain()


# ---------------------------------------------------------------- serve


def check_bind(host: str, settings: Settings) -> None:
    if not is_loopback(host) and not settings.api_token:
        raise SystemExit(
            f"refusing to bind {host}: a non-loopback address needs an API token "
            "(set CIFAR_SWEEPS_API_TOKEN), or bind 127.0.0.1"
        )


def _submit_when_up(server, app: FastAPI, spec_arg: str, host: str, port: int) -> None:
    from cifar_sweeps.spec.spec import load_spec_file
    from cifar_sweeps.usecases.submit import submit_sweep

    while not server.started:
        time.sleep(0.2)
    state: AppState = app.state.s
    base = f"http://{host}:{port}"
    try:
        from cifar_sweeps.analysis.plan import describe

        spec = load_spec_file(spec_arg, state.settings)
        # The first sweep of a fresh store has a plan too: the probe runs here (seconds) when
        # no epoch of its trial shape is measured yet.
        done = submit_sweep(spec, state.settings, state.store, state.jobs, run_probe=True)
        print(f"\nsubmitted sweep {done.sweep.id} ({spec.name}) as Ray job {done.sweep.ray_job_id}", flush=True)
        print(describe(done.plan), flush=True)
    except Exception as e:
        print(f"\ncould not submit {spec_arg}: {e}", file=sys.stderr, flush=True)
    print(
        f"  leaderboard page: {base}/\n  API:              {base}/docs\n"
        f"  leaderboard JSON: {base}/leaderboard\n  Ray dashboard:    {state.jobs.url}\n",
        flush=True,
    )


def print_token_hint(url: str) -> None:
    """A dashboard with Ray's token authentication on opens on a token prompt: say where the
    token is."""
    from cifar_sweeps.cluster.cluster import needs_token, token_path_hint

    if needs_token(url):
        print(
            f"the Ray dashboard at {url} asks for a token: paste the one in {token_path_hint()}; "
            "this service sends it to the Jobs API itself",
            flush=True,
        )


def _document_spec_body(app: FastAPI) -> None:
    """POST /sweeps validates its body in the route (routes/sweeps.py), so FastAPI does not
    see the model: the document names SweepSpec as its body, with the model's own schema."""
    from cifar_sweeps.spec.spec import SweepSpec

    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = generate()
            spec = SweepSpec.model_json_schema(ref_template="#/components/schemas/{model}")
            components = doc.setdefault("components", {}).setdefault("schemas", {})
            components.update(spec.pop("$defs", {}))
            components["SweepSpec"] = spec
            body = doc["paths"]["/sweeps"]["post"]["requestBody"]["content"]["application/json"]
            body["schema"] = {"$ref": "#/components/schemas/SweepSpec"}
        return app.openapi_schema

    app.openapi = openapi


def serving_settings(settings: Settings, host: str) -> Settings:
    """Bound to loopback with no allowed hosts set: only loopback names are answered, so a
    page on another site can't reach the service by rebinding its own name to 127.0.0.1."""
    if not settings.allowed_hosts and is_loopback(host):
        return settings.model_copy(update={"allowed_hosts": list(LOOPBACK_HOSTS)})
    return settings


def serve(
    settings: Settings, host: str = "127.0.0.1", port: int = 8000, submit: str | None = None, access_log: bool = False
) -> int:
    """Serve the API and the page; `access_log`: a line per request (off by default: the
    page polls every few seconds, which would flood the terminal)."""
    import uvicorn

    from cifar_sweeps.cluster.cluster import dashboard_url, ray_address, use_token_auth_if_needed

    check_bind(host, settings)
    settings = serving_settings(settings, host)
    get_store(settings.resolved_store_url())  # a store that can't be opened: say so before Ray starts
    head = None
    if not ray_address():
        head = LocalHead(dashboard_url(settings))
        print(f"starting a local Ray head (dashboard {head.dashboard}) unless one is running...", flush=True)
        head.ensure()
    # Before Ray's job client is first used: Ray reads its auth mode once.
    use_token_auth_if_needed(dashboard_url(settings))
    print_token_hint(dashboard_url(settings))
    app = create_app(settings)
    if head is not None:
        app.state.shutdown_hooks.append(head.stop)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=access_log))
    if submit:
        threading.Thread(target=_submit_when_up, args=(server, app, submit, host, port), daemon=True).start()
    try:
        server.run()
    finally:
        if head is not None:
            head.stop()
    return 0
