"""The leaderboard: every trial of every sweep, best first."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from cifar_sweeps.routes.deps import ID_PATTERN, MAX_OFFSET, State, checkpoint_url, json_response
from cifar_sweeps.schemas import Leaderboard, LeaderboardItem, error_responses

router = APIRouter(tags=["leaderboard"])


@router.get("/leaderboard", response_model=Leaderboard, responses=error_responses(422))
async def leaderboard(request: Request, state: State, sweep_id: str | None = Query(None, pattern=ID_PATTERN),
                      model: str | None = Query(None, pattern=r"^[A-Za-z0-9_]{1,64}$"),
                      limit: int = Query(50, ge=1, le=1000),
                      offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> Leaderboard:
    rows, total, names = state.store.leaderboard_page(sweep_id, model, limit, offset)
    items = [LeaderboardItem(
        rank=offset + i + 1, trial_id=t.id, sweep_id=t.sweep_id, sweep_name=names.get(t.sweep_id),
        model=t.model, config=t.config, val_acc=t.val_acc, val_loss=t.val_loss, test_acc=t.test_acc,
        best_epoch=t.best_epoch, epochs=t.epochs, epochs_budget=t.epochs_budget, status=t.status,
        seconds=t.seconds, node_id=t.node_id, checkpoint_url=checkpoint_url(request, t),
    ) for i, t in enumerate(rows)]
    return json_response(Leaderboard(items=items, total=total, limit=limit, offset=offset))
