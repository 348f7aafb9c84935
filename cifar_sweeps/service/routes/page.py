"""The page, what its script needs to know, and the charting library it draws with
(plotly.js, served from the installed `plotly` package: the page loads nothing from the
internet)."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from cifar_sweeps import __version__
from cifar_sweeps.errors import NotFound
from cifar_sweeps.service.routes.deps import State, public_dashboard
from cifar_sweeps.spec.metrics import METRICS

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


@router.get("/config.json")
def page_config(state: State) -> dict[str, Any]:
    return {
        "ray_dashboard": public_dashboard(state),
        "version": __version__,
        "token_required": bool(state.settings.api_token),
        # the Pareto plot's axes: every stored metric, in the registry's order (metrics.py)
        "metrics": [{"name": k, "mode": m.mode, "log": m.log_axis} for k, m in METRICS.items() if m.stored],
    }


@lru_cache(maxsize=1)
def plotly_js() -> Path | None:
    """plotly.min.js of the installed plotly package, found without importing it."""
    spec = importlib.util.find_spec("plotly")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


@router.get("/vendor/plotly.min.js")
def plotly() -> FileResponse:
    path = plotly_js()
    if path is None:
        raise NotFound("plotly.min.js not found: install the plotly package (a dependency)")
    # An hour: the file changes only when the package is upgraded.
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})
