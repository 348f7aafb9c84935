"""Sweeps: submit, list, read, change limits, stop, resume, extend, repeat, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from cifar_sweeps.analysis.replay import MAX_REPLAY_SEEDS
from cifar_sweeps.analysis.schemas import Importance, PlanOut
from cifar_sweeps.errors import SweepError
from cifar_sweeps.service.routes.deps import (
    CPU_LANE,
    MAX_OFFSET,
    AppState,
    Auth,
    State,
    StrictJSON,
    SweepDep,
    queue_again,
)
from cifar_sweeps.service.routes.presenters import checkpoint_url, json_response, sweep_out
from cifar_sweeps.service.schemas import SweepList, SweepOut, error_responses
from cifar_sweeps.store.cleanup import delete_sweep
from cifar_sweeps.store.lifecycle import change_limits, reconcile_local_driver
from cifar_sweeps.store.states import ACTIVE, SweepStatus
from cifar_sweeps.sweepspec.limits import Extend, Limits
from cifar_sweeps.sweepspec.metrics import ObjectiveMetric, StoredMetric
from cifar_sweeps.sweepspec.schema import Repeat, parse_spec
from cifar_sweeps.usecases import again
from cifar_sweeps.usecases.pareto import ParetoOut, pareto_out
from cifar_sweeps.usecases.submit import check_spec, plan_spec, submit_sweep

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


# The body is taken as plain JSON and validated in the route, which runs in the thread pool:
# the submit-time checks expand the space (bounded: milliseconds to tens of them), and no
# other request may wait on that on the event loop. api.py documents it as a SweepSpec.
@router.post(
    "",
    status_code=201,
    response_model=SweepOut,
    dependencies=[Auth, StrictJSON],
    responses=error_responses(400, 401, 413, 422, 429, 503, 507),
)
def create_sweep(raw: Annotated[dict[str, Any], Body()], request: Request, state: State) -> SweepOut:
    with CPU_LANE:
        spec = check_spec(raw, state.settings)  # SpecError (422) naming the field; the limits too
    done = submit_sweep(spec, state.settings, state.store, state.jobs)
    out = sweep_out(state, done.sweep, request)
    out.warnings = done.plan.warnings
    return out


@router.post(
    "/plan",
    response_model=PlanOut,
    dependencies=[Auth, StrictJSON],
    responses=error_responses(400, 401, 404, 413, 422, 503),
)
def plan_sweep(
    raw: Annotated[dict[str, Any], Body()],
    state: State,
    replay: Annotated[str | None, Query(max_length=64, description="a tabulated task: mlp, airbench, tinynet")] = None,
    replay_seeds: Annotated[int, Query(ge=1, le=MAX_REPLAY_SEEDS)] = 20,
) -> PlanOut:
    """What the spec (the body of POST /sweeps) will cost on this cluster: trials, trial-epochs,
    images, trials at once, wall time (best, expected, worst), memory, and what cuts it. Nothing
    is stored and nothing is submitted; a trial shape the store has never measured is probed
    (a few batches, in a process of its own) and kept for next time. With `replay`, the
    spec's searcher and scheduler are also replayed on that tabulated task (`replay` in the
    answer: expected best accuracy against simulated seconds)."""
    with CPU_LANE:
        spec = check_spec(raw, state.settings)
    return plan_spec(spec, state.settings, state.store, state.jobs.url, replay, replay_seeds)


@router.get("", response_model=SweepList, responses=error_responses(422))
def list_sweeps(
    request: Request,
    state: State,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    status: SweepStatus | None = Query(None),
) -> SweepList:
    rows, total = state.store.list_sweeps(limit, offset, status)
    rows = [reconcile_local_driver(state.store, r) for r in rows]  # a killed terminal run reads interrupted
    items = [sweep_out(state, r, request) for r in rows]
    for item in items:  # a list view carries a data set's class count; its names only when few
        if item.classes is not None and len(item.classes) > LIST_CLASSES:
            item.classes = None
    return json_response(SweepList(items=items, total=total, limit=limit, offset=offset))


LIST_CLASSES = 12  # class names a list view carries per sweep (a 10,000-class folder: the count only)


@router.get("/{sweep_id}", response_model=SweepOut, responses=error_responses(404))
async def get_sweep(sweep: SweepDep, request: Request, state: State) -> SweepOut:
    # Reads of the local store take about a millisecond: done on the event loop, they skip
    # the thread pool's hand-offs. Only an active sweep asks Ray or the OS (in a thread).
    if sweep.status in ACTIVE:
        sweep = await asyncio.to_thread(_follow, state, sweep)
    return json_response(sweep_out(state, sweep, request))


def _follow(state: AppState, sweep):
    return reconcile_local_driver(state.store, state.jobs.sync(sweep))


@router.post("/{sweep_id}/stop", response_model=SweepOut, dependencies=[Auth], responses=error_responses(401, 404, 409))
def stop(sweep: SweepDep, request: Request, state: State) -> SweepOut:
    if sweep.status not in ACTIVE:
        raise SweepError(f"sweep {sweep.id} is {sweep.status}, not queued or running")
    return sweep_out(state, state.jobs.stop(sweep), request)


@router.patch(
    "/{sweep_id}",
    response_model=SweepOut,
    dependencies=[Auth, StrictJSON],
    responses=error_responses(400, 401, 404, 409, 413, 422),
)
def update_limits(sweep: SweepDep, body: Limits, request: Request, state: State) -> SweepOut:
    """Change a queued or running sweep's `num_samples`, `max_concurrent_trials` or
    `time_budget_s` (null: none); its driver applies them within seconds. Checked as a
    submitted spec is (422 naming the field); 409 once the sweep has ended."""
    return sweep_out(state, change_limits(state.store, sweep.id, body, state.settings), request)


@router.delete(
    "/{sweep_id}", status_code=204, dependencies=[Auth, StrictJSON], responses=error_responses(401, 404, 409)
)
def delete(sweep: SweepDep, state: State) -> None:
    """Remove a sweep that is not queued or running (409: stop it first): its Tune folders,
    checkpoints and model files, cached exports, and its rows. Another sweep's files are
    never touched."""
    delete_sweep(state.settings, state.store, sweep.id)


@router.post(
    "/{sweep_id}/resume",
    response_model=SweepOut,
    dependencies=[Auth],
    responses=error_responses(401, 404, 409, 503, 507),
)
def resume(sweep: SweepDep, request: Request, state: State) -> SweepOut:
    """Resubmit an interrupted, stopped or failed sweep; its finished trials stand, its
    unfinished ones go on from their checkpoints. 409 for any other status."""
    return sweep_out(state, again.queue_resume(state.store, state.jobs, state.settings, sweep), request)


@router.post(
    "/{sweep_id}/repeat",
    response_model=SweepOut,
    dependencies=[Auth, StrictJSON],
    responses=error_responses(400, 401, 404, 409, 422, 503, 507),
)
def repeat(sweep: SweepDep, body: Repeat, request: Request, state: State) -> SweepOut:
    """Train the sweep's `top` best configurations again until each has `seeds` runs (new
    seeds, full epochs, no early stopping); the grouped leaderboard then ranks them by mean.
    409 while the sweep runs or when it has no finished trial; nothing changes then."""
    return queue_again(state, sweep, request, again.repeat(state.store, sweep.id, body.top, body.seeds))


@router.post(
    "/{sweep_id}/extend",
    response_model=SweepOut,
    dependencies=[Auth, StrictJSON],
    responses=error_responses(400, 401, 404, 409, 413, 422, 503, 507),
)
def extend(sweep: SweepDep, body: Extend, request: Request, state: State) -> SweepOut:
    """Add `trials` search trials to an ended sweep, in the same sweep: its Tune state is
    restored, the searcher's with it, so the new trials are those it suggests after the old
    ones; the refit follows the best configuration. 409 while it runs or for a grid."""
    return queue_again(state, sweep, request, again.extend(state.store, sweep.id, body.trials, state.settings))


@router.post(
    "/{sweep_id}/refit",
    response_model=SweepOut,
    dependencies=[Auth],
    responses=error_responses(401, 404, 409, 422, 503, 507),
)
def refit(sweep: SweepDep, request: Request, state: State) -> SweepOut:
    """Refit an ended sweep whose spec had no refit (or whose refit did not end well): its
    best configuration trained again on every training image and tested once, a row of its
    own marked as the refit, then the sweep's model. 409 while it runs, with no finished
    trial or with its refit done; 422 when its epoch budget can't pay; nothing changes then."""
    return queue_again(state, sweep, request, again.refit(state.store, sweep.id, state.settings))


@router.get("/{sweep_id}/pareto", response_model=ParetoOut, responses=error_responses(404, 422))
def sweep_pareto(
    sweep: SweepDep,
    request: Request,
    state: State,
    x: StoredMetric | None = Query(None, description="default: the spec's first objective, else params"),
    y: StoredMetric | None = Query(None, description="default: the spec's second objective, else best_val_acc"),
) -> ParetoOut:
    """Every completed trial's Pareto rank over two stored metrics (any two: a
    single-objective sweep too), and the non-dominated set."""
    trials = state.store.trials(sweep.id)
    return json_response(pareto_out(sweep.id, sweep.spec or {}, trials, x, y, lambda t: checkpoint_url(request, t)))


@router.get("/{sweep_id}/importance", response_model=Importance, responses=error_responses(404, 409, 503))
def sweep_importance(
    sweep: SweepDep,
    state: State,
    objective: ObjectiveMetric | None = Query(None, description="one of the spec's objectives (default: its metric)"),
) -> Importance:
    """Each searched parameter's fANOVA importance for the sweep's metric (or for one of its
    objectives), and its best region; 409 while too few trials have finished."""
    from cifar_sweeps.analysis.importance import cached_importance, for_objective

    spec = for_objective(parse_spec(sweep.spec), objective)
    return cached_importance(spec, sweep.id, sweep.data_version, lambda: state.store.trials(sweep.id))
