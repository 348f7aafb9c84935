"""What the routes share: the app's state, the token check, strict JSON bodies, the sweep
and trial lookups (404s), and response helpers. No route imports api.py."""

from __future__ import annotations

import hmac
import json
import threading
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.responses import Response

from cifar_sweeps.analysis.plan import actual as plan_actual
from cifar_sweeps.analysis.progress import TrialPace, estimate
from cifar_sweeps.cluster.cluster import is_loopback  # noqa: F401 (the routes and api.py import it from here)
from cifar_sweeps.cluster.jobs import Jobs
from cifar_sweeps.errors import InputError, Unauthorized
from cifar_sweeps.service.schemas import BestTrial, Links, Progress, RunningTrial, SweepOut
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.states import ACTIVE
from cifar_sweeps.store.store import Store
from cifar_sweeps.store.tables import Sweep, Trial, utcnow

# One request's CPU-bound checking at a time (a spec's parse and submit-time check, tens of
# ms of pure Python each). Twenty at once in the thread pool take the GIL in turns with the
# event loop, and /health waited over 300 ms behind them on two cores; queued here they wait
# without it. Only the checking: a plan's probe, which waits on a child, runs outside.
CPU_LANE = threading.BoundedSemaphore(1)

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,96}$"
MAX_OFFSET = 10**9


class AppState:
    """What every request works with: one Settings, one store, one Jobs (the Ray cluster)."""

    def __init__(self, settings: Settings, store: Store, jobs: Jobs):
        self.settings, self.store, self.jobs = settings, store, jobs


def get_state(request: Request) -> AppState:
    return request.app.state.s


State = Annotated[AppState, Depends(get_state)]


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


def base_url(request: Request) -> str:
    """The configured public base URL, or "" (relative links): never the request's Host,
    which a client chooses and a shared response cache would hand to everyone."""
    return request.app.state.s.settings.public_base_url.rstrip("/")


def json_response(model) -> Response:
    """A response model already built and validated here, serialized once (FastAPI would
    validate and encode it again: half the cost of the leaderboard's hot path)."""
    return Response(model.model_dump_json(), media_type="application/json")


def checkpoint_url(request: Request, t: Trial) -> str | None:
    return f"{base_url(request)}/trials/{t.id}/checkpoint" if t.checkpoint_path else None


def public_dashboard(state: AppState) -> str:
    """The Ray dashboard as a browser reaches it (Settings.public_dashboard_url), else the
    address the service uses."""
    return (state.settings.public_dashboard_url or state.jobs.url).rstrip("/")


def sweep_out(state: AppState, sweep: Sweep, request: Request) -> SweepOut:
    counts, best, trials = state.store.sweep_summary(sweep.id)
    out = SweepOut.model_validate(sweep)
    out.error = state.settings.redact(out.error)  # a job's log tail: no secret, whoever reads it
    out.data_source = source_name(sweep.data_source)
    out.class_count = len(sweep.classes) if sweep.classes is not None else None
    out.trial_counts = counts
    out.progress = progress(sweep, trials)
    out.best_trial = (
        BestTrial(
            trial_id=best.id,
            val_acc=best.val_acc,
            test_acc=best.test_acc,
            refit_of=best.refit_of,
            train_images=best.train_images,
        )
        if best
        else None
    )
    out.plan_actual = plan_actual(sweep.plan, sweep, out.progress.epochs_done)
    base = base_url(request)
    out.links = Links(
        self=f"{base}/sweeps/{sweep.id}",
        leaderboard=f"{base}/leaderboard?sweep_id={sweep.id}",
        ray_dashboard=f"{public_dashboard(state)}/#/jobs/{sweep.ray_job_id}" if sweep.ray_job_id else None,
    )
    return out


def source_name(source: str) -> str:
    """A data source as answers show it: its file or folder name, never the server's path
    to it (the store keeps the path for the driver; answers are cached for every reader)."""
    if "://" in source or source.startswith("synthetic:"):
        return source.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] if "://" in source else source
    return PurePath(source.rstrip("/")).name or source


def progress(sweep: Sweep, trials: list[tuple]) -> Progress:
    """Trials done out of the total, each running trial's epoch out of its budget, and an
    estimate of the time left (analysis/progress.py)."""
    elapsed = (utcnow() - sweep.started_at).total_seconds() if sweep.started_at else None
    e = estimate(sweep.spec or {}, [TrialPace(*t) for t in trials], sweep.status in ACTIVE, elapsed)
    return Progress(
        trials_total=e.trials_total,
        trials_done=e.trials_done,
        running=[RunningTrial(trial_id=t.id, epoch=t.epochs, epochs_budget=t.epochs_budget) for t in e.running],
        epochs_done=e.epochs_done,
        budget_epochs=e.budget_epochs,
        seconds_per_epoch=e.seconds_per_epoch,
        eta_s=e.eta_s,
    )


def writable_results(state: AppState) -> None:
    """507 when the results folder can't take what a sweep will write (usecases/submit.py)."""
    from cifar_sweeps.usecases.submit import writable_results as check

    check(state.settings)


def queue_again(state: AppState, sweep: Sweep, request: Request, ask) -> SweepOut:
    """An ended sweep queued again by `ask` (a lifecycle event that refuses with nothing
    changed: repeat, extend, continue), then submitted: its status reconciled first, the
    results folder writable and Ray reachable (503) before anything changes."""
    from cifar_sweeps.store.lifecycle import reconcile_local_driver

    reconcile_local_driver(state.store, state.jobs.sync(sweep))
    writable_results(state)
    state.jobs.client()
    ask()
    state.jobs.drain()
    return sweep_out(state, state.store.sweep(sweep.id), request)
