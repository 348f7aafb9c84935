"""The page, what its script needs to know, and the charting library it draws with
(plotly.js, vendored in the package: the page loads nothing from the internet)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from cifar_sweeps.errors import NotFound
from cifar_sweeps.service.routes.deps import State
from cifar_sweeps.service.routes.presenters import public_dashboard
from cifar_sweeps.sweepspec import searchers
from cifar_sweeps.sweepspec.metrics import METRICS
from cifar_sweeps.version import __version__

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
        # what each searcher can do (searchers.py): the editor offers warm start where it can
        "searchers": searchers.as_json(),
        "default_searcher": searchers.DEFAULT_SEARCHER,
    }


# plotly.js's strict build (plotly.js-strict-dist-min 4.1.1, MIT: LICENSE-plotly.js.txt beside
# it), vendored: it draws every trace the page uses, parallel coordinates included, with no
# `eval` or `new Function`, so the page's CSP needs no 'unsafe-eval'.
PLOTLY_JS = WEB_DIR / "vendor" / "plotly-strict.min.js"


@router.get("/vendor/plotly.min.js")
def plotly() -> FileResponse:
    if not PLOTLY_JS.is_file():
        raise NotFound("plotly.js is missing from the package (service/web/vendor): reinstall cifar-sweeps")
    # An hour: the file changes only with the package.
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})
