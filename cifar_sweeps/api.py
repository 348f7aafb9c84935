"""The HTTP API (FastAPI): sweeps through the Ray Jobs API, the leaderboard, the page.

Routes are thin: validation lives in spec.py, storage in store.py, Ray in jobs.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cifar_sweeps import __version__
from cifar_sweeps.cache import ResponseCache
from cifar_sweeps.jobs import Jobs, LocalHead, RayUnavailable
from cifar_sweeps.schemas import (
    BestTrial,
    EpochOut,
    Health,
    Leaderboard,
    LeaderboardItem,
    Links,
    SearchSpaceInfo,
    SearchSpaceList,
    SweepList,
    SweepOut,
    TrialOut,
    error_responses,
)
from cifar_sweeps.settings import Settings
from cifar_sweeps.spec import SpecError, SweepSpec, check_limits, load_spec_file
from cifar_sweeps.store import Store, Sweep, Trial, db_error_cause, get_store
from cifar_sweeps.weights import WeightsError

WEB_DIR = Path(__file__).resolve().parent / "web"
SEARCH_SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,96}$"
SYNC_EVERY_S = 3.0


# ---------------------------------------------------------------- middleware and errors


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
                raise _BodyTooLarge()
            return msg

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(self.max_bytes, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(max_bytes: int, send) -> None:
    body = json.dumps({"detail": f"request body is over the limit of {max_bytes} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
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


class AppState:
    def __init__(self, settings: Settings, store: Store, jobs: Jobs):
        self.settings, self.store, self.jobs = settings, store, jobs


def create_app(settings: Settings | None = None, jobs: Jobs | None = None) -> FastAPI:
    settings = settings or Settings()
    store = get_store(settings.resolved_store_url())
    state = AppState(settings, store, jobs or Jobs(settings, store))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(_sync_loop(state))
        yield
        task.cancel()
        # Here, not after uvicorn returns: uvicorn re-raises SIGTERM/SIGINT once it has shut
        # down, so code after server.run() never runs on Ctrl-C.
        for hook in app.state.shutdown_hooks:
            await asyncio.to_thread(hook)

    app = FastAPI(title="cifar-sweeps", version=__version__, lifespan=lifespan,
                  description="Hyperparameter sweeps for CIFAR-10 classifiers on Ray Tune.")
    app.state.s = state
    app.state.shutdown_hooks = []
    app.add_middleware(ResponseCache, ttl_s=settings.cache_ttl_s, version=store.data_version)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

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
        return JSONResponse(*_store_error(exc))

    _routes(app, state)
    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def _store_error(exc: DBAPIError) -> tuple[dict[str, str], int]:
    """A store that can't be written or reached: a clear message (the driver's own words,
    never the SQL or its parameters), and the transaction was rolled back."""
    cause = db_error_cause(exc)
    full = any(w in cause.lower() for w in ("readonly", "read-only", "disk is full", "no space"))
    return {"detail": f"the store can't {'be written' if full else 'be reached'}: {cause}; "
                      "nothing was changed"}, 507 if full else 503


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
    if state.store.count_sweeps(("queued", "running")) == 0:
        return
    state.jobs.sync_all()
    with contextlib.suppress(RayUnavailable):
        state.jobs.drain()


def _reject_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ValueError(f"duplicated key(s) {', '.join(repr(k) for k in dups)}")
    return dict(pairs)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


async def _strict_json(request: Request) -> None:
    """JSON bodies must be plain JSON: no duplicated keys (which would silently keep the
    last), no NaN or Infinity, and not nested past a sane depth."""
    raw = await request.body()
    if not raw:
        return
    if raw.count(b"[") + raw.count(b"{") > 10_000:
        raise HTTPException(422, "request body is nested too deeply")
    try:
        json.loads(raw, object_pairs_hook=_reject_pairs, parse_constant=_reject_constant)
    except RecursionError:
        raise HTTPException(422, "request body is nested too deeply") from None
    except ValueError as e:
        raise HTTPException(422, f"invalid JSON body: {e}") from None


def _require_token(request: Request) -> None:
    token = request.app.state.s.settings.api_token
    if not token:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    # compare_digest: the time taken does not tell how much of the token was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "missing or wrong API token (send Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})


Auth = Depends(_require_token)
StrictJSON = Depends(_strict_json)
MAX_OFFSET = 10**9
SweepId = Annotated[str, Query(pattern=ID_PATTERN)]


def _sweep_out(state: AppState, sweep: Sweep, request: Request) -> SweepOut:
    counts, best = state.store.sweep_summary(sweep.id)
    out = SweepOut.model_validate(sweep)
    out.trial_counts = counts
    out.best_trial = BestTrial(trial_id=best.id, val_acc=best.val_acc, test_acc=best.test_acc) if best else None
    base = str(request.base_url).rstrip("/")
    out.links = Links(self=f"{base}/sweeps/{sweep.id}", leaderboard=f"{base}/leaderboard?sweep_id={sweep.id}",
                      ray_dashboard=f"{state.jobs.url}/#/jobs/{sweep.ray_job_id}" if sweep.ray_job_id else None)
    return out


def _json(model) -> Response:
    """A response model already built and validated here, serialized once (FastAPI would
    validate and encode it again: half the cost of the leaderboard's hot path)."""
    return Response(model.model_dump_json(), media_type="application/json")


def _checkpoint_url(request: Request, t: Trial) -> str | None:
    return f"{str(request.base_url).rstrip('/')}/trials/{t.id}/checkpoint" if t.checkpoint_path else None


def _get_sweep(state: AppState, sweep_id: str) -> Sweep:
    sweep = state.store.get_sweep(sweep_id)
    if sweep is None:
        raise HTTPException(404, f"no sweep {sweep_id!r}")
    return sweep


def _get_trial(state: AppState, trial_id: str) -> Trial:
    t = state.store.get_trial(trial_id)
    if t is None:
        raise HTTPException(404, f"no trial {trial_id!r}")
    return t


def check_local_weights(spec: SweepSpec, state: AppState) -> None:
    """On a cluster on this machine (the service's own local head) the driver reads the same
    weights folder as this process: weights it would not find are a 422 now, not a failed
    sweep later. A remote cluster's driver checks its own folder before any trial starts."""
    from urllib.parse import urlparse

    from cifar_sweeps.spec import needs_pretrained
    from cifar_sweeps.weights import check_staged

    if is_loopback(urlparse(state.jobs.url).hostname or ""):
        check_staged(needs_pretrained(spec), state.settings.weights_dir)


def _presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SEARCH_SPACES_DIR.glob("*.json"))}


def _routes(app: FastAPI, state: AppState) -> None:  # noqa: C901 (a list of thin routes)
    from cifar_sweeps.storage import StorageError
    from cifar_sweeps.sweep import check_results_writable, code_version, refresh_interrupted

    def writable_results() -> None:
        try:
            check_results_writable(state.settings)
        except StorageError as e:
            # 507 Insufficient Storage: the server can't store what the sweep will write.
            raise HTTPException(507, f"{e}; nothing was stored") from None

    @app.post("/sweeps", status_code=201, response_model=SweepOut, dependencies=[Auth, StrictJSON],
              tags=["sweeps"], responses=error_responses(400, 401, 413, 422, 503, 507))
    def create_sweep(spec: SweepSpec, request: Request) -> SweepOut:
        s = state.settings
        try:
            check_limits(spec, s.max_num_samples, s.max_epochs, s.max_concurrent_trials)
            check_local_weights(spec, state)
        except (SpecError, WeightsError) as e:
            raise HTTPException(422, str(e)) from None
        writable_results()
        try:
            sweep = state.jobs.create(spec.model_dump(mode="json"), code_version())
        except RayUnavailable as e:
            raise HTTPException(503, f"{e}; nothing was stored, submit again once Ray is up") from None
        return _sweep_out(state, sweep, request)

    @app.get("/sweeps", response_model=SweepList, tags=["sweeps"], responses=error_responses(422))
    def list_sweeps(request: Request, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=MAX_OFFSET),
                    status: str | None = Query(None, pattern=r"^[a-z]{1,16}$")) -> SweepList:
        rows, total = state.store.list_sweeps(limit, offset, status)
        return _json(SweepList(items=[_sweep_out(state, r, request) for r in rows], total=total, limit=limit,
                         offset=offset))

    @app.get("/sweeps/{sweep_id}", response_model=SweepOut, tags=["sweeps"], responses=error_responses(404))
    async def get_sweep(sweep_id: str, request: Request) -> SweepOut:
        # Reads of the local store take about a millisecond: done on the event loop, they
        # skip the thread pool's hand-offs. Only an active sweep asks Ray (in a thread).
        sweep = _get_sweep(state, sweep_id)
        if sweep.status in ("queued", "running"):
            sweep = await asyncio.to_thread(state.jobs.sync, sweep)
        if sweep.status == "running" and not sweep.ray_job_id:
            refresh_interrupted(state.store, sweep)
            sweep = _get_sweep(state, sweep_id)
        return _json(_sweep_out(state, sweep, request))

    @app.post("/sweeps/{sweep_id}/stop", response_model=SweepOut, dependencies=[Auth], tags=["sweeps"],
              responses=error_responses(401, 404, 409))
    def stop(sweep_id: str, request: Request) -> SweepOut:
        sweep = _get_sweep(state, sweep_id)
        if sweep.status not in ("queued", "running"):
            raise HTTPException(409, f"sweep {sweep_id} is {sweep.status}, not queued or running")
        return _sweep_out(state, state.jobs.stop(sweep), request)

    @app.post("/sweeps/{sweep_id}/resume", response_model=SweepOut, dependencies=[Auth], tags=["sweeps"],
              responses=error_responses(401, 404, 409, 503, 507))
    def resume(sweep_id: str, request: Request) -> SweepOut:
        sweep = state.jobs.sync(_get_sweep(state, sweep_id))
        if sweep.status not in ("interrupted", "stopped", "failed"):
            raise HTTPException(409, f"sweep {sweep_id} is {sweep.status}; only interrupted, stopped or "
                                     "failed sweeps can be resumed")
        if not sweep.experiment_path:
            raise HTTPException(409, f"sweep {sweep_id} never started, so there is nothing to resume")
        writable_results()
        try:
            return _sweep_out(state, state.jobs.resume(sweep), request)
        except RayUnavailable as e:
            raise HTTPException(503, str(e)) from None

    @app.get("/leaderboard", response_model=Leaderboard, tags=["leaderboard"], responses=error_responses(422))
    async def leaderboard(request: Request, sweep_id: str | None = Query(None, pattern=ID_PATTERN),
                    model: str | None = Query(None, pattern=r"^[A-Za-z0-9_]{1,64}$"),
                    limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> Leaderboard:
        rows, total, names = state.store.leaderboard_page(sweep_id, model, limit, offset)
        items = [LeaderboardItem(
            rank=offset + i + 1, trial_id=t.id, sweep_id=t.sweep_id, sweep_name=names.get(t.sweep_id),
            model=t.model, config=t.config, val_acc=t.val_acc, val_loss=t.val_loss, test_acc=t.test_acc,
            best_epoch=t.best_epoch, epochs=t.epochs, epochs_budget=t.epochs_budget, status=t.status,
            seconds=t.seconds, checkpoint_url=_checkpoint_url(request, t),
        ) for i, t in enumerate(rows)]
        return _json(Leaderboard(items=items, total=total, limit=limit, offset=offset))

    @app.get("/trials/{trial_id}", response_model=TrialOut, tags=["trials"], responses=error_responses(404))
    def get_trial(trial_id: str, request: Request) -> TrialOut:
        t = _get_trial(state, trial_id)
        out = TrialOut.model_validate(t)
        out.checkpoint_url = _checkpoint_url(request, t)
        out.curves = [EpochOut.model_validate(e) for e in state.store.epochs(trial_id)]
        return out

    @app.get("/trials/{trial_id}/checkpoint", tags=["trials"], response_class=FileResponse,
             responses={200: {"content": {"application/octet-stream": {}}, "description": "The best model file"},
                        **error_responses(404)})
    def checkpoint(trial_id: str):
        t = _get_trial(state, trial_id)
        if not t.checkpoint_path:
            raise HTTPException(404, f"trial {trial_id} has no checkpoint yet")
        from cifar_sweeps.storage import open_checkpoint

        try:
            return open_checkpoint(t.checkpoint_path, f"{trial_id}.pt")
        except FileNotFoundError:
            raise HTTPException(404, f"the checkpoint file of trial {trial_id} is gone from storage") from None

    @app.get("/search-spaces", response_model=SearchSpaceList, tags=["search spaces"])
    def search_spaces(request: Request) -> SearchSpaceList:
        items = []
        for name, path in _presets().items():
            spec = load_spec_file(path)
            items.append(SearchSpaceInfo(name=name, description=spec.description, trials=spec.total_trials(),
                                         url=f"{str(request.base_url).rstrip('/')}/search-spaces/{name}"))
        return SearchSpaceList(items=items)

    @app.get("/search-spaces/{name}", tags=["search spaces"], responses=error_responses(404))
    def search_space(name: str) -> dict[str, Any]:
        path = _presets().get(name)
        if path is None:
            raise HTTPException(404, f"no search space {name!r}; see GET /search-spaces")
        return json.loads(path.read_text())

    @app.get("/health", response_model=Health, tags=["service"],
             responses={503: {"model": Health, "description": "The store is unreachable"}})
    def health() -> JSONResponse:
        try:
            state.store.ping()
            store_ok = "ok"
        except Exception as e:
            store_ok = f"error: {type(e).__name__}"
        ray_ok = "ok" if state.jobs.reachable() else "unreachable"
        body = Health(status="ok" if store_ok == "ok" and ray_ok == "ok" else "degraded", store=store_ok,
                      ray=ray_ok, ray_dashboard=state.jobs.url, version=__version__)
        return JSONResponse(body.model_dump(), status_code=200 if store_ok == "ok" else 503)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/config.json", include_in_schema=False)
    def page_config() -> dict[str, Any]:
        return {"ray_dashboard": state.jobs.url, "version": __version__}


# ---------------------------------------------------------------- serve


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    if not is_loopback(host) and not settings.api_token:
        raise SystemExit(
            f"refusing to bind {host}: a non-loopback address needs an API token "
            "(set CIFAR_SWEEPS_API_TOKEN), or bind 127.0.0.1"
        )


def _submit_when_up(server, app: FastAPI, spec_arg: str, host: str, port: int) -> None:
    from cifar_sweeps.cli import _resolve_spec_path

    while not server.started:
        time.sleep(0.2)
    state: AppState = app.state.s
    base = f"http://{host}:{port}"
    try:
        spec = load_spec_file(_resolve_spec_path(spec_arg), state.settings)
        from cifar_sweeps.sweep import code_version

        sweep = state.jobs.create(spec.model_dump(mode="json"), code_version())
        print(f"\nsubmitted sweep {sweep.id} ({spec.name}) as Ray job {sweep.ray_job_id}", flush=True)
    except Exception as e:
        print(f"\ncould not submit {spec_arg}: {e}", file=sys.stderr, flush=True)
    print(f"  leaderboard page: {base}/\n  API:              {base}/docs\n"
          f"  leaderboard JSON: {base}/leaderboard\n  Ray dashboard:    {state.jobs.url}\n", flush=True)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, submit: str | None = None) -> int:
    import uvicorn

    from cifar_sweeps.jobs import dashboard_url, use_token_auth_if_needed

    check_bind(host, settings)
    get_store(settings.resolved_store_url())  # a store that can't be opened: say so before Ray starts
    head = None
    if not os.environ.get("RAY_ADDRESS"):
        head = LocalHead(dashboard_url(settings))
        print(f"starting a local Ray head (dashboard {head.dashboard}) unless one is running...", flush=True)
        head.ensure()
    # Before Ray is imported (create_app imports it): Ray reads its auth mode once, at import.
    use_token_auth_if_needed(dashboard_url(settings))
    app = create_app(settings)
    if head is not None:
        app.state.shutdown_hooks.append(head.stop)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    if submit:
        threading.Thread(target=_submit_when_up, args=(server, app, submit, host, port), daemon=True).start()
    try:
        server.run()
    finally:
        if head is not None:
            head.stop()
    return 0
