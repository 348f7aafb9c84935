"""Sweep and trial status: the only ways they change, and why a sweep ended as it did.

Every change of a sweep's or a trial's status goes through `apply` or `apply_trials` (through
the functions below, which name the events): the store updates a row only if its status is
still one the event may leave from (states.py's tables), in one conditional UPDATE, so two
processes that race (a driver finishing, the API reconciling with Ray) can't both win, and
a refused transition changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

from cifar_sweeps.errors import SpecError, SweepError, TransitionError
from cifar_sweeps.store.artifacts import last_state, why_not_extendable
from cifar_sweeps.store.states import (
    ACTIVE,
    TERMINAL,
    TRANSITIONS,
    TRIAL_COMPLETED,
    TRIAL_ENDED,
    TRIAL_TRANSITIONS,
    Event,
    Reason,
    SweepStatus,
    TrialEvent,
    TrialStatus,
)
from cifar_sweeps.store.tables import utcnow

if TYPE_CHECKING:
    from cifar_sweeps.store.queries import Store
    from cifar_sweeps.store.tables import Sweep


# Trials still running when their sweep is interrupted: continue from their checkpoints on
# resume when Tune saved its state (a clean interrupt), else they are marked errored.
CLEAN_INTERRUPTS = frozenset({Reason.DISK_LOW, Reason.DRIVER_INTERRUPTED})


def next_status(status: str, event: Event) -> SweepStatus:
    """The status `event` leads to from `status`, or TransitionError."""
    allowed, to = TRANSITIONS[event]
    if status not in allowed:
        raise TransitionError(f"a {status} sweep can't {event.value} (only from {', '.join(sorted(allowed))})")
    return to


def apply(store: Store, sweep_id: str, event: Event, **values: Any) -> SweepStatus:
    """Move a sweep through `event`, writing `values` with the new status, or raise
    TransitionError (nothing changed) when its status does not allow it."""
    sweep = store.sweep(sweep_id)  # NotFound naming it
    allowed, to = TRANSITIONS[event]
    next_status(sweep.status, event)
    values["status"] = to
    # An ended sweep has an end time; one that runs or waits again has none.
    values.setdefault("finished_at", utcnow() if to in TERMINAL else None)
    if not store.transition_sweep(sweep_id, {str(s) for s in allowed}, values):
        now = store.get_sweep(sweep_id)
        raise TransitionError(
            f"sweep {sweep_id} became {now.status if now else 'deleted'} meanwhile; it can't {event.value}"
        )
    return to


# ---------------------------------------------------------------- the events, by name


def claim(store: Store, sweep_id: str, host: str, pid: int, experiment_path: str) -> SweepStatus:
    # A sweep queued for this driver may have been asked to stop meanwhile (request_stop):
    # its driver's stopper ends it at once. One resumed from stopped starts unasked.
    queued = store.sweep(sweep_id).status == SweepStatus.QUEUED
    return apply(
        store,
        sweep_id,
        Event.START,
        driver_host=host,
        driver_pid=pid,
        experiment_path=experiment_path,
        **({} if queued else {"stop_requested": False}),
        started_at=utcnow(),
        finished_at=None,
        error=None,
        reason=None,
    )


def requeue(store: Store, sweep_id: str) -> SweepStatus:
    """A resumable sweep queued for the service to submit (as a Ray job that resumes it)."""
    return apply(
        store,
        sweep_id,
        Event.REQUEUE,
        ray_job_id=None,
        stop_requested=False,
        finished_at=None,
        error=None,
        reason=None,
        **NO_DRIVER,
    )


def repeat(store: Store, sweep_id: str, top: int, seeds: int, held: bool = False) -> SweepStatus:
    """Ask an ended sweep for repeats of its `top` best configurations to `seeds` runs each:
    the spec gains its repeat section, and the sweep is queued for a driver that resumes it
    (the search is over: only the repeats run). Refused (SweepError, SpecError: nothing
    changes) while it runs, when it has no finished trial, or when its budget can't pay."""
    from cifar_sweeps.sweepspec.schema import parse_spec

    sweep = store.sweep(sweep_id)
    if sweep.status not in TERMINAL:
        raise SweepError(f"sweep {sweep_id} is {sweep.status}; repeat it once it has ended")
    trials = store.trials(sweep_id)
    if not any(t.status in TRIAL_COMPLETED and t.val_acc is not None for t in trials):
        raise SweepError(f"sweep {sweep_id} has no finished trial with a score: there is nothing to repeat")
    if not sweep.experiment_path:
        raise SweepError(f"sweep {sweep_id} never started, so there is nothing to repeat")
    spec = parse_spec({**sweep.spec, "repeat": {"top": top, "seeds": seeds}})  # SpecError naming the field
    _budget_pays(store, sweep_id, spec, spec.repeat_epochs(), "repeat: the repeats need")
    return _queue_with(store, sweep_id, Event.REPEAT, spec, held)


def extend(store: Store, sweep_id: str, trials: int, settings=None, held: bool = False) -> SweepStatus:
    """Ask an ended sweep for `trials` more search trials: its num_samples becomes the search
    trials it has plus `trials`, and it is queued for a driver that restores its Tune state,
    the searcher's included (tuning/live.py), so the new trials are those the searcher
    suggests after the old ones. Refused (SweepError, SpecError: nothing changes) while it
    runs, for a grid, when it never started, or over the service's limits."""
    from cifar_sweeps.sweepspec.schema import parse_spec

    sweep = store.sweep(sweep_id)  # NotFound naming it
    if sweep.status not in TERMINAL:
        raise SweepError(f"sweep {sweep_id} is {sweep.status}; extend it once it has ended (or raise num_samples now)")
    if not sweep.experiment_path:
        raise SweepError(f"sweep {sweep_id} never started, so there is no search to extend")
    if why := why_not_extendable(sweep.experiment_path):
        raise SweepError(f"sweep {sweep_id} can't be extended: {why}")
    spec = parse_spec(sweep.spec)
    if spec.search.algorithm == "grid":
        raise SweepError(f"sweep {sweep_id} is a grid: it walks its grid, and has no searcher to extend")
    if spec.scheduler.type == "pbt":
        raise SweepError(f"sweep {sweep_id} is a pbt population: it has no searcher to extend; submit a new sweep")
    searched = sum(1 for t in store.trials(sweep_id) if t.refit_of is None and t.repeat_of is None)
    spec = parse_spec({**spec.model_dump(mode="json"), "num_samples": searched + trials}, settings)
    return _queue_with(store, sweep_id, Event.EXTEND, spec, held)


def refit(store: Store, sweep_id: str, settings=None, held: bool = False) -> SweepStatus:
    """Ask an ended sweep for the refit its spec did not ask for, or that did not end well:
    its best configuration trained again on every training image and tested once
    (tuning/refit.py). The spec gains `"refit": true`, and the sweep is queued for a driver
    that resumes it (the search is over: only the refit runs). Refused (SweepError,
    SpecError: nothing changes) while it runs, when it never started, with no finished
    search trial with a score, when its refit is done, or when its epoch budget can't pay."""
    from cifar_sweeps.sweepspec.schema import parse_spec

    sweep = store.sweep(sweep_id)  # NotFound naming it
    if sweep.status not in TERMINAL:
        raise SweepError(f"sweep {sweep_id} is {sweep.status}; refit it once it has ended")
    if not sweep.experiment_path:
        raise SweepError(f"sweep {sweep_id} never started, so there is nothing to refit")
    trials = store.trials(sweep_id)
    searched = [t for t in trials if t.refit_of is None]
    if not any(t.status in TRIAL_COMPLETED and t.val_acc is not None for t in searched):
        raise SweepError(f"sweep {sweep_id} has no finished trial with a score: there is nothing to refit")
    done = next((t for t in trials if t.refit_of is not None and t.status in TRIAL_COMPLETED), None)
    if done is not None:
        raise SweepError(f"sweep {sweep_id} has its refit already: trial {done.id}, of {done.refit_of}")
    spec = parse_spec({**sweep.spec, "refit": True}, settings)  # SpecError naming the field
    _budget_pays(store, sweep_id, spec, spec.refit_epochs(), "refit: the refit needs")
    return _queue_with(store, sweep_id, Event.REFIT, spec, held)


def _budget_pays(store: Store, sweep_id: str, spec, need: int, what: str) -> None:
    """SpecError (422) when the sweep's budget.epochs has fewer trial-epochs left than `need`."""
    if spec.budget is None:
        return
    left = spec.budget.epochs - len(store.epoch_keys(sweep_id))
    if need > left:
        raise SpecError(f"{what} up to {need} trial-epochs, and budget.epochs has {max(left, 0)} left")


def continue_id(source_tune_id: str, epochs: int) -> str:
    """A continuation's Tune id: the same row whichever driver runs it (tuning/continued.py)."""
    return f"{source_tune_id}-c{epochs}"


def continue_trial(store: Store, trial_id: str, epochs: int, settings=None, held: bool = False) -> str:
    """Ask for an ended trial to be trained `epochs` more from its last checkpoint, as a new
    row of its sweep (tuning/continued.py): the spec gains the request, and the sweep is
    queued for a driver that resumes it. Returns the sweep's id. Refused (SweepError,
    SpecError: nothing changes) while the sweep runs, for a refit, for a trial that did not
    end well or whose last state is gone, twice for the same epochs, and past the service's
    epoch limit or the sweep's budget."""
    from cifar_sweeps.sweepspec.schema import parse_spec

    if epochs < 1:
        raise SpecError(f"epochs: {epochs} more is nothing to train; give at least 1")
    trial = store.trial(trial_id)  # NotFound naming it
    sweep = store.sweep(trial.sweep_id)
    why = f"trial {trial.id} can't be continued"
    if sweep.status not in TERMINAL:
        raise SweepError(f"{why}: its sweep {sweep.id} is {sweep.status}; continue it once the sweep has ended")
    if trial.refit_of is not None:
        raise SweepError(f"{why}: it is its sweep's refit, trained on every image; continue {trial.refit_of} instead")
    if trial.status not in TRIAL_COMPLETED:
        raise SweepError(f"{why}: it is {trial.status}, and only a trial that ended well has a state to go on from")
    try:
        last_state(trial.checkpoint_path)
    except SweepError as e:
        raise SweepError(f"{why}: {e}") from None
    limit = settings.max_epochs if settings is not None else None
    if limit is not None and trial.epochs + epochs > limit:
        raise SpecError(
            f"epochs: trial {trial.id} has trained {trial.epochs}; {epochs} more make {trial.epochs + epochs}, "
            f"over the service's limit of {limit} (CIFAR_SWEEPS_MAX_EPOCHS)"
        )
    spec = parse_spec(sweep.spec)
    same = continue_id(trial.tune_trial_id, epochs)
    if any(t.tune_trial_id == same for t in store.trials(sweep.id)):
        raise SweepError(f"{why} by {epochs} epochs again: {sweep.id}-{same} did that; continue that row instead")
    left = None if spec.budget is None else max(spec.budget.epochs - len(store.epoch_keys(sweep.id)), 0)
    if left is not None and epochs > left:
        raise SpecError(f"epochs: the sweep's budget.epochs has {left} trial-epochs left, not {epochs}")
    asked = [*[c.model_dump() for c in spec.continues], {"trial": trial.id, "epochs": epochs}]
    _queue_with(store, sweep.id, Event.CONTINUE, parse_spec({**spec.model_dump(mode="json"), "continues": asked}), held)
    return sweep.id


def _queue_with(store: Store, sweep_id: str, event: Event, spec, held: bool = False) -> SweepStatus:
    """An ended sweep queued again with its new spec, for a driver that resumes it: a Ray
    job the service submits, or (`held`) the driver of this process (`holder`)."""
    return apply(
        store,
        sweep_id,
        event,
        spec=spec.model_dump(mode="json"),
        ray_job_id=None,
        stop_requested=False,
        error=None,
        reason=None,
        **holder(held),
    )


def holder(held: bool) -> dict[str, Any]:
    """The driver columns of a sweep queued for this process's driver (`held`), or of one
    queued for the service to submit (none). A queued sweep with a driver is not the
    service's to submit (Store.next_queued): a `cifar-sweeps refit` in a terminal and a
    service on the same store would otherwise both run it."""
    import os
    import socket

    return {"driver_host": socket.gethostname(), "driver_pid": os.getpid()} if held else NO_DRIVER


NO_DRIVER: dict[str, Any] = {"driver_host": None, "driver_pid": None}


CUT_BY_THE_SWEEP = (
    "early stopped: its sweep ended while it trained (the sweep's time_budget_s or epoch budget was spent)"
)


def finish(store: Store, sweep_id: str, reason: Reason | None = None) -> SweepStatus:
    to = apply(store, sweep_id, Event.FINISH, **({"reason": reason.value} if reason else {}))
    # A budget (time or epochs) ends a sweep with trials mid-run: Tune stops them without a
    # trial callback, so they end here, with the cause.
    _end_running_trials(store, sweep_id, TrialEvent.EARLY_STOP, error=CUT_BY_THE_SWEEP)
    return to


def interrupt(store: Store, sweep_id: str, reason: Reason, error: str | None = None) -> SweepStatus:
    to = apply(store, sweep_id, Event.INTERRUPT, reason=reason.value, **_error(error))
    _end_running_trials(store, sweep_id, TrialEvent.PAUSE if reason in CLEAN_INTERRUPTS else TrialEvent.ABANDON)
    return to


def stopped(store: Store, sweep_id: str) -> SweepStatus:
    to = apply(store, sweep_id, Event.STOP)
    _end_running_trials(store, sweep_id, TrialEvent.EARLY_STOP)
    return to


def fail(store: Store, sweep_id: str, reason: Reason, error: str | None = None) -> SweepStatus:
    to = apply(store, sweep_id, Event.FAIL, reason=reason.value, **_error(error))
    _end_running_trials(store, sweep_id, TrialEvent.ABANDON)
    return to


# ---------------------------------------------------------------- trials


def apply_trials(
    store: Store,
    event: TrialEvent,
    *,
    trial_id: str | None = None,
    sweep_id: str | None = None,
    only: frozenset[TrialStatus] | None = None,
    **values: Any,
) -> int:
    """Move a trial (or a sweep's trials, those in `only`) through `event`, writing `values`
    with the new status, where their status allows it; how many moved. A refusal is no error:
    a trial that completed keeps its first end (a restored run reports it again)."""
    allowed, to = TRIAL_TRANSITIONS[event]
    if only is not None:
        allowed = allowed & only
    values["status"] = to
    values.setdefault("finished_at", utcnow() if to in TRIAL_ENDED else None)
    if to == TrialStatus.RUNNING:  # a retry starts clean
        values.setdefault("error", None)
    return store.transition_trials({str(s) for s in allowed}, values, trial_id=trial_id, sweep_id=sweep_id)


def trial_started(
    store: Store,
    sweep_id: str,
    tune_trial_id: str,
    config: dict[str, Any],
    epochs_budget: int | None,
    repeat_of: str | None = None,
    refit_of: str | None = None,
    continue_of: str | None = None,
) -> str:
    """A trial starts: a new row, running; or a retried or resumed one, running again."""
    tid, created = store.create_trial(sweep_id, tune_trial_id, config, epochs_budget, repeat_of, refit_of, continue_of)
    if not created:
        apply_trials(store, TrialEvent.START, trial_id=tid)
    return tid


TRIAL_END_EVENTS = {
    TrialStatus.TERMINATED: TrialEvent.COMPLETE,
    TrialStatus.EARLY_STOPPED: TrialEvent.EARLY_STOP,
    TrialStatus.ERRORED: TrialEvent.ERROR,
}


def trial_ended(store: Store, trial_id: str, status: TrialStatus | str, error: str | None = None) -> None:
    """A trial ends (Tune's complete or error callback)."""
    event = TRIAL_END_EVENTS[TrialStatus(status)]
    apply_trials(store, event, trial_id=trial_id, error=error[-8000:] if error else None)


NOT_RESTORED = (
    "not in the sweep's saved state: it started after Tune's last experiment snapshot "
    "(under a second before its driver ended), so it can't continue; the resumed search runs "
    "a new trial in its place (a seeded searcher may suggest the same configuration again)"
)


def trials_not_restored(store: Store, sweep_id: str, restored: set[str]) -> list[str]:
    """The search trials its dead driver left (errored, no error of their own) that the
    restored Tune run does not hold (`restored`: Tune's trial ids): they will never run
    again, and their rows say why. Repeats are left out (their ids are stable: a resumed
    driver replans and reruns them). Returns their ids."""
    lost = [
        t
        for t in store.trials(sweep_id)
        if t.status == TrialStatus.ERRORED
        and not t.error
        and t.repeat_of is None
        and t.refit_of is None
        and t.tune_trial_id not in restored
    ]
    only = frozenset({TrialStatus.ERRORED})
    for t in lost:  # its end time stays the driver's
        apply_trials(store, TrialEvent.ERROR, trial_id=t.id, only=only, error=NOT_RESTORED, finished_at=t.finished_at)
    return [t.id for t in lost]


def _end_running_trials(store: Store, sweep_id: str, event: TrialEvent, **values: Any) -> None:
    """The trials still running when their sweep ends or is interrupted."""
    apply_trials(store, event, sweep_id=sweep_id, only=frozenset({TrialStatus.RUNNING}), **values)


def _error(error: str | None) -> dict[str, str]:
    return {"error": error[-4000:]} if error else {}


def note(store: Store, sweep_id: str, reason: Reason, error: str) -> None:
    """Record why a running sweep is about to end (e.g. the disk watch, before it raises
    SIGINT); the status moves when the driver ends (`driver_ended`)."""
    store.update_sweep(sweep_id, reason=reason.value, error=error[-4000:])


def request_stop(store: Store, sweep_id: str) -> str:
    """Ask a sweep to stop: its driver's stopper ends every trial and keeps the results. A
    sweep still waiting in the queue is stopped at once. Returns its status, or `stopping`."""
    sweep = store.sweep(sweep_id)  # NotFound naming it
    if sweep.status not in ACTIVE:
        return sweep.status
    store.update_sweep(sweep_id, stop_requested=True)
    if sweep.status == SweepStatus.QUEUED and not sweep.ray_job_id and not sweep.driver_pid:
        return stopped(store, sweep_id)  # no driver has it yet: none will
    return "stopping"


def change_limits(store: Store, sweep_id: str, limits, settings=None):
    """Set a queued or running sweep's limits (sweepspec/limits.py's Limits): checked as a
    submitted spec is, written to its stored spec, read by its driver within seconds.
    Returns the sweep; TransitionError when it is not queued or running (nothing written)."""
    from cifar_sweeps.sweepspec.limits import with_limits

    sweep = store.sweep(sweep_id)  # NotFound naming it
    if sweep.status not in ACTIVE:
        raise TransitionError(f"sweep {sweep_id} is {sweep.status}: only a queued or running sweep's limits change")
    spec = with_limits(sweep.spec, limits, settings)  # SpecError naming the field
    if not store.set_active_spec(sweep_id, spec.model_dump(mode="json")):
        raise TransitionError(f"sweep {sweep_id} ended meanwhile: its limits were not changed")
    return store.sweep(sweep_id)


# ---------------------------------------------------------------- deciding the end


def driver_ended(
    store: Store, sweep_id: str, unfinished_trials: int, errored: int, total: int, budget_spent: bool = False
) -> SweepStatus:
    """How a sweep ends when its driver's Tune run returns: the reason it was interrupted
    (noted before), a stop request, trials left unfinished (Tune returned on a signal), all
    trials failed, or success (its epoch budget spent, or its trials all ended)."""
    sweep = store.get_sweep(sweep_id)
    if sweep.reason == Reason.DISK_LOW:
        return interrupt(store, sweep_id, Reason.DISK_LOW)
    if sweep.stop_requested:
        return stopped(store, sweep_id)
    if unfinished_trials:
        return interrupt(
            store,
            sweep_id,
            Reason.DRIVER_INTERRUPTED,
            f"the driver was interrupted with {unfinished_trials} trial(s) unfinished; resume it",
        )
    if total and errored == total:
        return fail(store, sweep_id, Reason.ALL_TRIALS_FAILED, f"all {total} trials failed")
    return finish(store, sweep_id, Reason.BUDGET_SPENT if budget_spent else None)


def reconcile_local_driver(store: Store, sweep: Sweep) -> Sweep:
    """A sweep whose driver ran on this host from a terminal (`cifar-sweeps run`, `refit`,
    ..., or `ray job submit` of it: no job id of ours) and is gone (SIGKILL, the OOM killer,
    a machine that lost power): one that was running is interrupted, so that `resume` can
    continue it; one still queued for it (killed while it started) failed to start. Every
    reader that judges a sweep's status calls this first. Job-path sweeps are judged by the
    Ray Jobs API instead (`Jobs.sync`)."""
    import socket

    if (
        sweep.status not in ACTIVE
        or sweep.ray_job_id
        or not sweep.driver_pid
        or sweep.driver_host != socket.gethostname()
        # A queued sweep's started_at is an earlier run's (if any): its driver came later.
        or driver_alive(sweep.driver_pid, sweep.started_at if sweep.status == SweepStatus.RUNNING else None)
    ):
        return sweep
    gone = f"the driver (pid {sweep.driver_pid} on {sweep.driver_host}) is gone"
    with contextlib.suppress(TransitionError):  # the driver wrote its own end meanwhile: that one stands
        if sweep.status == SweepStatus.RUNNING:
            interrupt(store, sweep.id, Reason.DRIVER_LOST, f"{gone}; resume the sweep")
        else:
            again = "resume the sweep" if sweep.experiment_path else "submit it again"
            fail(store, sweep.id, Reason.DRIVER_LOST, f"{gone} before it started the sweep; {again}")
    return store.get_sweep(sweep.id)


def reconcile_local_drivers(store: Store) -> None:
    """`reconcile_local_driver` for every active sweep (what the CLI's readers call first)."""
    for status in ACTIVE:
        rows, _ = store.list_sweeps(limit=1000, status=status)
        for sweep in rows:
            reconcile_local_driver(store, sweep)


def driver_alive(pid: int, started_at: dt.datetime | None) -> bool:
    """Whether `pid` is still the driver that claimed the sweep at `started_at` (UTC): a
    zombie is not, and neither is a later process that got the same pid."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists, assume it is the driver
        return True
    # The driver starts before it claims the sweep; 2 s of slack for clock granularity.
    return started_at is None or created <= started_at.replace(tzinfo=dt.UTC).timestamp() + 2


def reconcile(store: Store, sweep: Sweep, job_status: str | None, message: str = "") -> SweepStatus | str:
    """Bring an active sweep in line with its Ray job: `job_status` is the job's status, or
    None when the cluster does not know the job. A job still going changes nothing."""
    if sweep.status not in ACTIVE or job_status in ("PENDING", "RUNNING"):
        return sweep.status
    started = sweep.status == SweepStatus.RUNNING
    try:
        if job_status is None:
            why = f"Ray job {sweep.ray_job_id} is unknown to the cluster"
            return (
                interrupt(store, sweep.id, Reason.JOB_UNKNOWN, why)
                if started
                else fail(store, sweep.id, Reason.JOB_UNKNOWN, why)
            )
        if job_status == "STOPPED":
            return stopped(store, sweep.id)
        if job_status == "SUCCEEDED":
            return finish(store, sweep.id) if started else fail(store, sweep.id, Reason.JOB_FAILED, message)
        return (
            interrupt(store, sweep.id, Reason.JOB_FAILED, message)
            if started
            else fail(store, sweep.id, Reason.JOB_FAILED, message)
        )
    except TransitionError:  # the driver wrote its own end meanwhile: that one stands
        return store.get_sweep(sweep.id).status


def reconcile_lost_cluster(store: Store, sweep: Sweep, why: str) -> SweepStatus | str:
    """An active sweep whose cluster is gone: interrupted (resumable) if it had started,
    failed if it never had."""
    try:
        if sweep.status == SweepStatus.RUNNING:
            return interrupt(store, sweep.id, Reason.CLUSTER_LOST, why)
        return fail(store, sweep.id, Reason.CLUSTER_LOST, why)
    except TransitionError:  # the driver wrote its own end meanwhile: that one stands
        return store.get_sweep(sweep.id).status
