"""The leaderboard page and what its script needs to know."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from cifar_sweeps import __version__
from cifar_sweeps.routes.deps import State

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


@router.get("/config.json")
def page_config(state: State) -> dict[str, Any]:
    return {"ray_dashboard": state.jobs.url, "version": __version__}
