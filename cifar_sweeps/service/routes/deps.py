"""What the routes share: the app's state, the token check, strict JSON bodies, the sweep
and trial lookups (404s), and queueing an ended sweep again (presenters.py builds the
answers). No route imports api.py."""

from __future__ import annotations

import hmac
import json
import threading
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from cifar_sweeps.cluster.connection import is_loopback  # noqa: F401 (the routes and api.py import it from here)
from cifar_sweeps.errors import InputError, Unauthorized
from cifar_sweeps.service.routes.presenters import sweep_out
from cifar_sweeps.service.routes.state import AppState, State, get_state  # noqa: F401 (the routes import them from here)
from cifar_sweeps.service.schemas import SweepOut
from cifar_sweeps.store.tables import Sweep, Trial
from cifar_sweeps.usecases import again

# One request's CPU-bound checking at a time (a spec's parse and submit-time check, tens of
# ms of pure Python each). Twenty at once in the thread pool take the GIL in turns with the
# event loop, and /health waited over 300 ms behind them on two cores; queued here they wait
# without it. Only the checking: a plan's probe, which waits on a child, runs outside.
CPU_LANE = threading.BoundedSemaphore(1)

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,96}$"
MAX_OFFSET = 10**9


def require_token(request: Request, state: State) -> None:
    token = state.settings.api_token
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken does not tell how much of the token was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("missing or wrong API token (send Authorization: Bearer <token>)")


def _reject_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ValueError(f"duplicated key(s) {', '.join(repr(k) for k in dups)}")
    return dict(pairs)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


async def strict_json(request: Request) -> None:
    """JSON bodies must be plain JSON: no duplicated keys (which would silently keep the
    last), no NaN or Infinity, and not nested past a sane depth."""
    raw = await request.body()
    if not raw:
        return
    if raw.count(b"[") + raw.count(b"{") > 10_000:
        raise InputError("request body is nested too deeply")
    try:
        json.loads(raw, object_pairs_hook=_reject_pairs, parse_constant=_reject_constant)
    except RecursionError:
        raise InputError("request body is nested too deeply") from None
    except ValueError as e:
        raise InputError(f"invalid JSON body: {e}") from None


Auth = Depends(require_token)
StrictJSON = Depends(strict_json)


def sweep_or_404(state: State, sweep_id: Annotated[str, Path()]) -> Sweep:
    return state.store.sweep(sweep_id)


def trial_or_404(state: State, trial_id: Annotated[str, Path()]) -> Trial:
    return state.store.trial(trial_id)


SweepDep = Annotated[Sweep, Depends(sweep_or_404)]
TrialDep = Annotated[Trial, Depends(trial_or_404)]


def writable_results(state: AppState) -> None:
    """507 when the results folder can't take what a sweep will write (usecases/submit.py)."""
    from cifar_sweeps.usecases.submit import writable_results as check

    check(state.settings)


def queue_again(state: AppState, sweep: Sweep, request: Request, ask: again.Ask) -> SweepOut:
    """An ended sweep asked for more (usecases/again.py: repeat, extend, continue), queued
    as a Ray job; the answer is the sweep."""
    return sweep_out(state, again.queue(state.store, state.jobs, state.settings, sweep, ask), request)
