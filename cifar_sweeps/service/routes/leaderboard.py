"""The leaderboard: every trial of every sweep, best first, as JSON or CSV, filtered by
sweep, model, status and any config parameter."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cifar_sweeps.analysis.filters import ConfigFilter, parse_filters
from cifar_sweeps.service.routes.deps import ID_PATTERN, MAX_OFFSET, State
from cifar_sweeps.service.routes.presenters import checkpoint_url, json_response
from cifar_sweeps.service.schemas import error_responses
from cifar_sweeps.store.states import TrialStatus
from cifar_sweeps.sweepspec.metrics import DEFAULT_ORDER, StoredMetric
from cifar_sweeps.sweepspec.registry import NAME_RE as MODEL_NAME_RE
from cifar_sweeps.usecases.leaderboard import (
    BoardQuery,
    GroupedLeaderboard,
    Leaderboard,
    LeaderboardItem,
    groups_csv,
    read_board,
    read_groups,
    to_csv,
)

router = APIRouter(tags=["leaderboard"])
FILTER_HELP = "a config parameter: NAME:LOW..HIGH (numbers, ends inclusive, either may be left out) or NAME:V1,V2"


class BoardParams:
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
        self.group = group
        filters: list[ConfigFilter] = parse_filters(filter)
        statuses = [s.value for s in status]
        self.query = BoardQuery(sweep_id, model, statuses, filters, offset, sort=sort, dataset=dataset)

    def page(self, limit: int) -> BoardQuery:
        return replace(self.query, limit=limit)


Board = Annotated[BoardParams, Depends()]


def _items(request: Request, q: BoardQuery, state) -> tuple[list[LeaderboardItem], int]:
    return read_board(state.store, q, lambda t: checkpoint_url(request, t))


# Both routes are plain functions: FastAPI runs them in its thread pool, so a large page or
# CSV (up to 100,000 rows, seconds of work) never holds the event loop; hot views are
# served by the response cache without reaching them.
@router.get("/leaderboard", response_model=Leaderboard | GroupedLeaderboard, responses=error_responses(422))
def leaderboard(
    request: Request, state: State, q: Board, limit: int = Query(50, ge=1, le=1000)
) -> Leaderboard | GroupedLeaderboard:
    if q.group:
        return json_response(read_groups(state.store, q.page(limit)))
    items, total = _items(request, q.page(limit), state)
    return json_response(Leaderboard(items=items, total=total, limit=limit, offset=q.query.offset))


@router.get(
    "/leaderboard.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The leaderboard's rows as CSV"},
        **error_responses(422),
    },
)
def leaderboard_csv(request: Request, state: State, q: Board, limit: int = Query(10_000, ge=1, le=100_000)) -> Response:
    page = q.page(limit)
    text = groups_csv(read_groups(state.store, page).items) if q.group else to_csv(_items(request, page, state)[0])
    return Response(
        text, media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="leaderboard.csv"'}
    )
