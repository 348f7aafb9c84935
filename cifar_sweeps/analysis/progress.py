"""A running sweep's progress and time left, from its trials' epochs so far (the API's
`progress` of GET /sweeps/{id})."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from cifar_sweeps.store.states import TRIAL_ENDED, TrialStatus


class TrialPace(NamedTuple):
    """One trial as the estimate reads it (store.sweep_summary's rows)."""

    id: str
    status: str
    epochs: int  # done
    epochs_budget: int | None
    seconds: float  # its epochs' training seconds so far


@dataclass(frozen=True)
class Estimate:
    trials_total: int
    trials_done: int
    running: list[TrialPace]
    epochs_done: int
    budget_epochs: int | None
    seconds_per_epoch: float | None
    eta_s: float | None


def total_trials(spec: dict[str, Any]) -> int:
    """The spec's number of trials (grid points times num_samples), without validating it."""
    n = int(spec.get("num_samples", 1) or 1)
    if (spec.get("search") or {}).get("algorithm") == "grid":
        for p in (spec.get("params") or {}).values():
            n *= len(p.get("values", [None])) if isinstance(p, dict) else 1
    return n


def estimate(spec: dict[str, Any], trials: list[TrialPace], active: bool, elapsed_s: float | None = None) -> Estimate:
    """Trials done out of the total, and the time left (None once the sweep is not active):
    the epochs left (each running trial's to its budget, each unstarted trial at the mean
    budget, capped by the spec's epoch budget) at the seconds per epoch measured so far,
    spread over the trials that run at once; never more than what its time budget has left
    after `elapsed_s` seconds of running."""
    total = max(len(trials), total_trials(spec))
    running = [t for t in trials if t.status == TrialStatus.RUNNING]
    epochs_done = sum(t.epochs for t in trials)
    pace = sum(t.seconds for t in trials) / epochs_done if epochs_done else None
    budgets = [t.epochs_budget for t in trials if t.epochs_budget]
    mean_budget = sum(budgets) / len(budgets) if budgets else 0
    left = sum(max((t.epochs_budget or 0) - t.epochs, 0) for t in running) + mean_budget * (total - len(trials))
    budget = (spec.get("budget") or {}).get("epochs")
    if budget is not None:  # a budget ends the sweep first
        left = min(left, max(budget - epochs_done, 0))
    concurrency = max(1, min(int(spec.get("max_concurrent_trials", 1)), max(len(running), 1)))
    eta = left * pace / concurrency if pace is not None and active else None
    limit = spec.get("time_budget_s")
    if eta is not None and limit is not None and elapsed_s is not None:
        eta = min(eta, max(float(limit) - elapsed_s, 0.0))
    return Estimate(
        trials_total=total,
        trials_done=sum(1 for t in trials if t.status in TRIAL_ENDED),
        running=running,
        epochs_done=epochs_done,
        budget_epochs=budget,
        seconds_per_epoch=pace,
        eta_s=eta,
    )
