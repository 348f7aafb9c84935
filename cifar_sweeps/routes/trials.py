"""Trials: config and curves, and the best model file."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from cifar_sweeps.routes.deps import State, TrialDep, checkpoint_url
from cifar_sweeps.schemas import EpochOut, TrialOut, error_responses

router = APIRouter(prefix="/trials", tags=["trials"])


@router.get("/{trial_id}", response_model=TrialOut, responses=error_responses(404))
def get_trial(t: TrialDep, request: Request, state: State) -> TrialOut:
    out = TrialOut.model_validate(t)
    out.checkpoint_url = checkpoint_url(request, t)
    out.curves = [EpochOut.model_validate(e) for e in state.store.epochs(t.id)]
    return out


@router.get("/{trial_id}/checkpoint", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The best model file"},
                       **error_responses(404)})
def checkpoint(t: TrialDep):
    from cifar_sweeps.storage import open_checkpoint

    if not t.checkpoint_path:
        raise HTTPException(404, f"trial {t.id} has no checkpoint yet")
    try:
        return open_checkpoint(t.checkpoint_path, f"{t.id}.pt")
    except FileNotFoundError:
        raise HTTPException(404, f"the checkpoint file of trial {t.id} is gone from storage") from None
