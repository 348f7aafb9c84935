"""What the routes answer with: a stored sweep as its API answer (status, counts, best trial,
progress, links), links built from the configured base URL (never the request's Host), and
a response serialized once. Reads rows; changes nothing."""

from __future__ import annotations

from pathlib import PurePath

from fastapi import Request
from fastapi.responses import Response

from cifar_sweeps.analysis.plan import actual as plan_actual
from cifar_sweeps.analysis.progress import TrialPace, estimate
from cifar_sweeps.service.routes.state import AppState
from cifar_sweeps.service.schemas import BestTrial, Links, Progress, RunningTrial, SweepOut
from cifar_sweeps.store.states import ACTIVE
from cifar_sweeps.store.tables import Sweep, Trial, utcnow


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
