"""The HTTP API (FastAPI): the app's wiring (its routers, middleware, error answers and the
loop that follows the cluster's jobs). The routes are thin: they call the use cases
(usecases/); the middleware is middleware.py's; `serve` (uvicorn, a local Ray head) is serve.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cifar_sweeps.analysis.importance import shutdown_worker
from cifar_sweeps.cluster.jobs import Jobs
from cifar_sweeps.errors import CifarSweepsError, RayUnavailable
from cifar_sweeps.service.middleware import FaultHooks, add_middleware
from cifar_sweeps.service.predict_pool import shutdown_worker as shutdown_predict_worker
from cifar_sweeps.service.routes import ROUTERS
from cifar_sweeps.service.routes.deps import AppState
from cifar_sweeps.service.routes.page import WEB_DIR
from cifar_sweeps.settings import Settings, load_settings
from cifar_sweeps.store.queries import db_error_cause, get_store
from cifar_sweeps.store.states import ACTIVE
from cifar_sweeps.usecases.notify import notify_ended
from cifar_sweeps.version import __version__

SYNC_EVERY_S = 3.0

log = logging.getLogger(__name__)


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
            hook()  # each kills its worker and waits for its pool's thread (well under a second)

    app = _new_app(lifespan)
    app.state.s = state
    # The worker processes: importance's (analysis/importance.py) and predict's (predict_pool.py).
    app.state.shutdown_hooks = [shutdown_worker, shutdown_predict_worker]
    add_middleware(app, settings, store)

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


def _document_spec_body(app: FastAPI) -> None:
    """POST /sweeps validates its body in the route (routes/sweeps.py), so FastAPI does not
    see the model: the document names SweepSpec as its body, with the model's own schema."""
    from cifar_sweeps.sweepspec.schema import SweepSpec

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
