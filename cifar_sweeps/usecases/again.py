"""An ended sweep asked for more: repeats of its best configurations (`repeat`), more search
trials (`extend`), a trial trained on from its last checkpoint (`continue`), the refit of its
best configuration on every training image (`refit`); and an interrupted one resumed
(`queue_resume`). Each ask goes
through the lifecycle, which refuses with nothing changed (while the sweep runs, for a grid,
over the limits, with nothing to repeat); then the sweep runs again, as a Ray job
(`queue`: POST /sweeps/{id}/repeat, /extend, /refit, /trials/{id}/continue) or in this
process (`run_here`: `cifar-sweeps repeat`, `extend`, `refit`, `continue`).
"""

from __future__ import annotations

from collections.abc import Callable

from cifar_sweeps.cluster.jobs import Jobs
from cifar_sweeps.errors import SweepError
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import Store
from cifar_sweeps.store.states import RESUMABLE
from cifar_sweeps.store.tables import Sweep

# Asks the lifecycle; the id of the sweep queued again. Its argument, `held`: for the driver of
# this process (run_here), not for the service to submit (queue).
Ask = Callable[[bool], str]


def repeat(store: Store, sweep_id: str, top: int, seeds: int) -> Ask:
    """The `top` best configurations trained again until each has `seeds` runs."""

    def ask(held: bool) -> str:
        lifecycle.repeat(store, sweep_id, top, seeds, held=held)
        return sweep_id

    return ask


def extend(store: Store, sweep_id: str, trials: int, settings: Settings) -> Ask:
    """`trials` more search trials, the searcher's state carried (a grid refuses)."""

    def ask(held: bool) -> str:
        lifecycle.extend(store, store.sweep(sweep_id).id, trials, settings, held=held)  # NotFound naming it
        return sweep_id

    return ask


def refit(store: Store, sweep_id: str, settings: Settings) -> Ask:
    """Its best configuration refit on every training image (a spec that had no refit)."""

    def ask(held: bool) -> str:
        lifecycle.refit(store, sweep_id, settings, held=held)
        return sweep_id

    return ask


def continue_trial(store: Store, trial_id: str, epochs: int, settings: Settings) -> Ask:
    """An ended trial trained `epochs` more, a new row of its sweep."""
    return lambda held: lifecycle.continue_trial(store, trial_id, epochs, settings, held=held)


def queue(store: Store, jobs: Jobs, settings: Settings, sweep: Sweep, ask: Ask) -> Sweep:
    """Ask, then submit the sweep as a Ray job: its status reconciled first, the results
    folder writable (507) and Ray reachable (503) before anything changes."""
    from cifar_sweeps.usecases.submit import writable_results

    lifecycle.reconcile_local_driver(store, jobs.sync(sweep))
    writable_results(settings)
    jobs.client()
    sweep_id = ask(False)
    jobs.drain()
    return store.sweep(sweep_id)


def queue_resume(store: Store, jobs: Jobs, settings: Settings, sweep: Sweep) -> Sweep:
    """An interrupted, stopped or failed sweep resubmitted as a Ray job that resumes it
    (POST /sweeps/{id}/resume): its status reconciled first; SweepError (409) for one that is
    not resumable or never started, 507 and 503 as `queue`, with nothing changed."""
    from cifar_sweeps.usecases.submit import writable_results

    sweep = lifecycle.reconcile_local_driver(store, jobs.sync(sweep))
    if sweep.status not in RESUMABLE:
        raise SweepError(
            f"sweep {sweep.id} is {sweep.status}; only {', '.join(sorted(RESUMABLE))} sweeps can be resumed"
        )
    if not sweep.experiment_path:
        raise SweepError(f"sweep {sweep.id} never started, so there is nothing to resume")
    writable_results(settings)
    return jobs.resume(sweep)


def run_here(store: Store, settings: Settings, ask: Ask) -> str:
    """Ask, then run the sweep to its end in this process (the search is over: only what
    was asked for runs); the sweep's id. It is queued held by this process, so a service
    on the same store leaves it to this driver."""
    from cifar_sweeps.usecases.drive import drive

    sweep_id = ask(True)
    drive(sweep_id, settings, store, "resume")
    return sweep_id
