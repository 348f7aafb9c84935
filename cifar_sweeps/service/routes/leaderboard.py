"""The leaderboard: every trial of every sweep, best first, as JSON or CSV, filtered by
sweep, model, status and any config parameter."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cifar_sweeps.analysis.filters import ConfigFilter, parse_filters
from cifar_sweeps.service.routes.deps import ID_PATTERN, MAX_OFFSET, State, checkpoint_url, json_response
from cifar_sweeps.service.schemas import (
    GroupedLeaderboard,
    Leaderboard,
    LeaderboardItem,
    error_responses,
    group_items,
    groups_csv,
    leaderboard_items,
    to_csv,
)
from cifar_sweeps.spec.metrics import DEFAULT_ORDER, StoredMetric
from cifar_sweeps.spec.registry import NAME_RE as MODEL_NAME_RE
from cifar_sweeps.store.states import TrialStatus

router = APIRouter(tags=["leaderboard"])
FILTER_HELP = "a config parameter: NAME:LOW..HIGH (numbers, ends inclusive, either may be left out) or NAME:V1,V2"


class BoardQuery:
    """The leaderboard's query parameters, shared by the JSON and the CSV route."""

    def __init__(
        self,
        sweep_id: str | None = Query(None, pattern=ID_PATTERN),
        model: str | None = Query(None, pattern=MODEL_NAME_RE.pattern),  # a plug-in's name may have '-' or '.'
        status: list[TrialStatus] = Query([], description="trial status; repeat for several"),
        filter: list[str] = Query([], description=FILTER_HELP, max_length=20),  # noqa: A002
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        group: Literal["config"] | None = Query(
            None, description="config: one row per configuration over its seeds (mean, 95 % interval)"
        ),
        sort: StoredMetric = Query(
            DEFAULT_ORDER, description="the order: any stored metric, in its own direction (best first)"
        ),
        dataset: str | None = Query(
            None, max_length=128, description="one data set only (without it, rows are grouped by data set)"
        ),
    ):
        self.sweep_id, self.model, self.status, self.offset, self.group = sweep_id, model, status, offset, group
        self.dataset = dataset
        self.filters: list[ConfigFilter] = parse_filters(filter)
        self.sort = order_of(sort)


Board = Annotated[BoardQuery, Depends()]


def order_of(metric: str) -> tuple[str, str]:
    """A metric's column in the store and its direction (metrics.STORED)."""
    from cifar_sweeps.spec.metrics import STORED

    return STORED[metric]


def _items(request: Request, state, q: BoardQuery, limit: int) -> tuple[list[LeaderboardItem], int]:
    rows, total, names = state.store.leaderboard_page(
        q.sweep_id, q.model, limit, q.offset, q.filters, [s.value for s in q.status], q.sort, q.dataset
    )
    items = leaderboard_items(rows, names, q.offset, lambda t: checkpoint_url(request, t))
    mark_feasible(state.store, rows, items)
    return items, total


def mark_feasible(store, rows: list, items: list[LeaderboardItem]) -> None:
    """Each item of a sweep with constraints says whether it keeps them (spec/constraints.py)."""
    from cifar_sweeps.spec.constraints import feasible, parse_all

    bounds = {}
    for sid in {t.sweep_id for t in rows}:
        sweep = store.get_sweep(sid)
        raw = (sweep.spec or {}).get("constraints") if sweep is not None else None
        try:
            bounds[sid] = parse_all(raw or [])
        except ValueError:  # a stored spec is valid when stored; an edited one is not trusted
            bounds[sid] = []
    for t, item in zip(rows, items, strict=True):
        if bounds.get(t.sweep_id):
            item.feasible = feasible(bounds[t.sweep_id], t)


# Trials grouped at most: a grouped view reads every matching trial to form its groups.
MAX_GROUPED_TRIALS = 100_000


def grouped(state, q: BoardQuery, limit: int) -> GroupedLeaderboard:
    """One row per configuration (ranking.py), sorted by mean val_acc, paged by groups."""
    from cifar_sweeps.analysis.ranking import group_trials

    rows, _, names = state.store.leaderboard_page(
        q.sweep_id, q.model, MAX_GROUPED_TRIALS, 0, q.filters, [s.value for s in q.status], dataset=q.dataset
    )
    groups = group_trials(rows)
    page = groups[q.offset : q.offset + limit]
    return GroupedLeaderboard(
        items=group_items(page, names, q.offset),
        total=len(groups),
        limit=limit,
        offset=q.offset,
        trials=sum(len(g.trials) for g in groups),
    )


# Both routes are plain functions: FastAPI runs them in its thread pool, so a large page or
# CSV (up to 100,000 rows, seconds of work) never holds the event loop; hot views are
# served by the response cache without reaching them.
@router.get("/leaderboard", response_model=Leaderboard | GroupedLeaderboard, responses=error_responses(422))
def leaderboard(
    request: Request, state: State, q: Board, limit: int = Query(50, ge=1, le=1000)
) -> Leaderboard | GroupedLeaderboard:
    if q.group:
        return json_response(grouped(state, q, limit))
    items, total = _items(request, state, q, limit)
    return json_response(Leaderboard(items=items, total=total, limit=limit, offset=q.offset))


@router.get(
    "/leaderboard.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The leaderboard's rows as CSV"},
        **error_responses(422),
    },
)
def leaderboard_csv(request: Request, state: State, q: Board, limit: int = Query(10_000, ge=1, le=100_000)) -> Response:
    text = groups_csv(grouped(state, q, limit).items) if q.group else to_csv(_items(request, state, q, limit)[0])
    return Response(
        text, media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="leaderboard.csv"'}
    )
