"""The presets, as served: names, descriptions, and each spec."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from cifar_sweeps.errors import NotFound, SpecError
from cifar_sweeps.service.routes.presenters import base_url
from cifar_sweeps.service.schemas import SearchSpaceInfo, SearchSpaceList, error_responses
from cifar_sweeps.sweepspec import presets
from cifar_sweeps.sweepspec.schema import parse_spec

router = APIRouter(prefix="/search-spaces", tags=["search spaces"])


@router.get("", response_model=SearchSpaceList)
def search_spaces(request: Request) -> SearchSpaceList:
    items = []
    for name in presets.names():
        spec = parse_spec(presets.read(name))
        items.append(
            SearchSpaceInfo(
                name=name,
                description=spec.description,
                trials=spec.total_trials(),
                url=f"{base_url(request)}/search-spaces/{name}",
            )
        )
    return SearchSpaceList(items=items)


@router.get("/{name}", responses=error_responses(404))
def search_space(name: str) -> dict[str, Any]:
    try:
        return json.loads(presets.read(name))
    except SpecError:
        raise NotFound(f"no search space {name!r}; see GET /search-spaces") from None
