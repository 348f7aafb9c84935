"""The states of sweeps and trials, and the only transitions between them: plain data below
the store and the lifecycle (lifecycle.py applies them; queries.py writes them guarded).

Sweeps:

    event      from                                       to
    requeue    interrupted, stopped, failed               queued       (resume asked for)
    repeat     succeeded, stopped, interrupted, failed    queued       (repeats asked for)
    start      queued, interrupted, stopped, failed       running      (a driver claims it)
    finish     running                                    succeeded
    interrupt  running                                    interrupted  (resumable; Reason says why)
    stop       queued, running                            stopped
    fail       queued, running, interrupted, stopped,     failed       (Reason says why)
               failed

Trials (a new trial's row is written running):

    event        from                        to
    start        pending, running, errored   running        (a retried or resumed trial)
    complete     pending, running, errored   terminated     (trained its whole budget)
    early_stop   pending, running, errored   early_stopped  (scheduler, stop request, budget)
    error        pending, running, errored   errored
    pause        running                     pending        (its sweep was interrupted cleanly)
    abandon      running                     errored        (its sweep ended under it)

A completed trial (terminated, early_stopped) never changes again: a restored run may start
it only for its scheduler to stop it (schedulers.py), and its first end stands.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


class SweepStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"


class TrialStatus(StrEnum):
    PENDING = "pending"  # will continue from its checkpoint when the sweep is resumed
    RUNNING = "running"
    TERMINATED = "terminated"  # trained its whole budget
    EARLY_STOPPED = "early_stopped"  # stopped by the scheduler, a stop request or the budget
    ERRORED = "errored"


class Exploit(BaseModel):
    """One step of population-based training (tuning/pbt.py): a trial that stood at epoch
    `at_epoch` went on from `source`'s checkpoint at `from_epoch`, its mutated params
    changed from `before` to `after`. A trial's row keeps the list, in order."""

    at_epoch: int
    from_epoch: int
    source: str  # the trial (store id) whose weights it took
    before: dict[str, float | int | str | bool | None]
    after: dict[str, float | int | str | bool | None]


class Reason(StrEnum):
    """Why a sweep is interrupted or failed, or ended before its trials did (the
    sweeps.reason column)."""

    DISK_LOW = "disk_low"  # the results disk filled mid-sweep
    DRIVER_INTERRUPTED = "driver_interrupted"  # Ctrl-C / SIGINT / SIGTERM of the driver
    DRIVER_LOST = "driver_lost"  # the driver process is gone (CLI path)
    DRIVER_ERROR = "driver_error"  # the driver raised before or while running Tune
    JOB_FAILED = "job_failed"  # the Ray job ended FAILED without the driver saying so
    JOB_UNKNOWN = "job_unknown"  # the cluster no longer knows the job (it was restarted)
    CLUSTER_LOST = "cluster_lost"  # the Ray cluster (its head) stopped answering
    ALL_TRIALS_FAILED = "all_trials_failed"
    BUDGET_SPENT = "budget_spent"  # its epoch budget ran out: it succeeded, with what that bought


class Event(StrEnum):
    REQUEUE = "requeue"
    REPEAT = "repeat"
    EXTEND = "extend"
    CONTINUE = "continue"  # a trial of it trained on (cifar-sweeps continue)
    REFIT = "refit"  # its best configuration refit on every training image (cifar-sweeps refit)
    START = "start"
    FINISH = "finish"
    INTERRUPT = "interrupt"
    STOP = "stop"
    FAIL = "fail"


ACTIVE = frozenset({SweepStatus.QUEUED, SweepStatus.RUNNING})
RESUMABLE = frozenset({SweepStatus.INTERRUPTED, SweepStatus.STOPPED, SweepStatus.FAILED})
TERMINAL = frozenset(SweepStatus) - ACTIVE
TRIAL_ENDED = frozenset({TrialStatus.TERMINATED, TrialStatus.EARLY_STOPPED, TrialStatus.ERRORED})
# Ended without an error: a retry never runs them again, and their results are final.
TRIAL_COMPLETED = frozenset({TrialStatus.TERMINATED, TrialStatus.EARLY_STOPPED})
# A command that ran a sweep to one of these exits 0.
ENDED_WELL = frozenset({SweepStatus.SUCCEEDED, SweepStatus.STOPPED})

TRANSITIONS: dict[Event, tuple[frozenset[SweepStatus], SweepStatus]] = {
    Event.REQUEUE: (RESUMABLE, SweepStatus.QUEUED),
    Event.REPEAT: (TERMINAL, SweepStatus.QUEUED),
    Event.EXTEND: (TERMINAL, SweepStatus.QUEUED),
    Event.CONTINUE: (TERMINAL, SweepStatus.QUEUED),
    Event.REFIT: (TERMINAL, SweepStatus.QUEUED),
    Event.START: (RESUMABLE | {SweepStatus.QUEUED}, SweepStatus.RUNNING),
    Event.FINISH: (frozenset({SweepStatus.RUNNING}), SweepStatus.SUCCEEDED),
    Event.INTERRUPT: (frozenset({SweepStatus.RUNNING}), SweepStatus.INTERRUPTED),
    Event.STOP: (ACTIVE, SweepStatus.STOPPED),
    Event.FAIL: (ACTIVE | RESUMABLE, SweepStatus.FAILED),
}


class TrialEvent(StrEnum):
    START = "start"
    COMPLETE = "complete"
    EARLY_STOP = "early_stop"
    ERROR = "error"
    PAUSE = "pause"
    ABANDON = "abandon"


_OPEN = frozenset({TrialStatus.PENDING, TrialStatus.RUNNING, TrialStatus.ERRORED})
_RUNNING = frozenset({TrialStatus.RUNNING})
TRIAL_TRANSITIONS: dict[TrialEvent, tuple[frozenset[TrialStatus], TrialStatus]] = {
    TrialEvent.START: (_OPEN, TrialStatus.RUNNING),
    TrialEvent.COMPLETE: (_OPEN, TrialStatus.TERMINATED),
    TrialEvent.EARLY_STOP: (_OPEN, TrialStatus.EARLY_STOPPED),
    TrialEvent.ERROR: (_OPEN, TrialStatus.ERRORED),
    TrialEvent.PAUSE: (_RUNNING, TrialStatus.PENDING),
    TrialEvent.ABANDON: (_RUNNING, TrialStatus.ERRORED),
}
