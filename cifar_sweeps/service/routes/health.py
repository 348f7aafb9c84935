"""Service health: /livez (the process answers: Kubernetes' liveness probe, which must not
restart the API when PostgreSQL or Ray blips) and /health (the store and the Ray cluster:
readiness)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cifar_sweeps.service.routes.deps import State
from cifar_sweeps.service.routes.presenters import public_dashboard
from cifar_sweeps.service.schemas import Health
from cifar_sweeps.version import __version__

router = APIRouter(tags=["service"])


@router.get(
    "/health", response_model=Health, responses={503: {"model": Health, "description": "The store is unreachable"}}
)
def health(state: State) -> JSONResponse:
    try:
        state.store.ping()
        store_ok = "ok"
    except Exception as e:
        store_ok = f"error: {type(e).__name__}"
    ray_ok = "ok" if state.jobs.reachable() else "unreachable"
    body = Health(
        status="ok" if store_ok == "ok" and ray_ok == "ok" else "degraded",
        store=store_ok,
        ray=ray_ok,
        ray_dashboard=public_dashboard(state),
        version=__version__,
    )
    return JSONResponse(body.model_dump(), status_code=200 if store_ok == "ok" else 503)


@router.get("/livez")
def livez() -> dict[str, str]:
    """The process is up and serving: depends on nothing else (no store, no Ray)."""
    return {"status": "ok", "version": __version__}
