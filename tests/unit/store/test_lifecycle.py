"""The sweep lifecycle, table-driven: every (status, event) pair leads to its new status, or
is refused with nothing changed; and the decisions built on it (a driver's end, a Ray job's
state) land where they should."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import socket
import subprocess

import pytest

from cifar_sweeps.errors import NotFound, TransitionError
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import Store
from cifar_sweeps.store.states import Event, Reason, SweepStatus, TrialEvent, TrialStatus

Q, R, OK, F, S, INT = (
    SweepStatus.QUEUED,
    SweepStatus.RUNNING,
    SweepStatus.SUCCEEDED,
    SweepStatus.FAILED,
    SweepStatus.STOPPED,
    SweepStatus.INTERRUPTED,
)
# The whole table, written out: (status, event) -> new status, or None for a refusal.
EXPECTED = {
    (Q, Event.REQUEUE): None,
    (R, Event.REQUEUE): None,
    (OK, Event.REQUEUE): None,
    (F, Event.REQUEUE): Q,
    (S, Event.REQUEUE): Q,
    (INT, Event.REQUEUE): Q,
    (Q, Event.REPEAT): None,
    (R, Event.REPEAT): None,
    (OK, Event.REPEAT): Q,
    (F, Event.REPEAT): Q,
    (S, Event.REPEAT): Q,
    (INT, Event.REPEAT): Q,
    (Q, Event.EXTEND): None,
    (R, Event.EXTEND): None,
    (OK, Event.EXTEND): Q,
    (F, Event.EXTEND): Q,
    (S, Event.EXTEND): Q,
    (INT, Event.EXTEND): Q,
    (Q, Event.CONTINUE): None,
    (R, Event.CONTINUE): None,
    (OK, Event.CONTINUE): Q,
    (F, Event.CONTINUE): Q,
    (S, Event.CONTINUE): Q,
    (INT, Event.CONTINUE): Q,
    (Q, Event.REFIT): None,
    (R, Event.REFIT): None,
    (OK, Event.REFIT): Q,
    (F, Event.REFIT): Q,
    (S, Event.REFIT): Q,
    (INT, Event.REFIT): Q,
    (Q, Event.START): R,
    (R, Event.START): None,
    (OK, Event.START): None,
    (F, Event.START): R,
    (S, Event.START): R,
    (INT, Event.START): R,
    (Q, Event.FINISH): None,
    (R, Event.FINISH): OK,
    (OK, Event.FINISH): None,
    (F, Event.FINISH): None,
    (S, Event.FINISH): None,
    (INT, Event.FINISH): None,
    (Q, Event.INTERRUPT): None,
    (R, Event.INTERRUPT): INT,
    (OK, Event.INTERRUPT): None,
    (F, Event.INTERRUPT): None,
    (S, Event.INTERRUPT): None,
    (INT, Event.INTERRUPT): None,
    (Q, Event.STOP): S,
    (R, Event.STOP): S,
    (OK, Event.STOP): None,
    (F, Event.STOP): None,
    (S, Event.STOP): None,
    (INT, Event.STOP): None,
    (Q, Event.FAIL): F,
    (R, Event.FAIL): F,
    (OK, Event.FAIL): None,
    (F, Event.FAIL): F,
    (S, Event.FAIL): F,
    (INT, Event.FAIL): F,
}


def test_the_table_covers_every_pair():
    assert set(EXPECTED) == set(itertools.product(SweepStatus, Event))


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 's.db'}")


# The events that lead a new (queued) sweep to each status.
PATHS = {
    SweepStatus.QUEUED: [],
    SweepStatus.RUNNING: [Event.START],
    SweepStatus.SUCCEEDED: [Event.START, Event.FINISH],
    SweepStatus.INTERRUPTED: [Event.START, Event.INTERRUPT],
    SweepStatus.STOPPED: [Event.STOP],
    SweepStatus.FAILED: [Event.FAIL],
}


def _sweep_in(store: Store, status: SweepStatus) -> str:
    sweep = store.create_sweep({"name": "x"}, "synthetic:10", "v")
    for event in PATHS[status]:
        lifecycle.apply(store, sweep.id, event)
    assert store.get_sweep(sweep.id).status == status
    return sweep.id


def _row(store: Store, sweep_id: str) -> dict:
    s = store.get_sweep(sweep_id)
    return {
        c: getattr(s, c)
        for c in (
            "status",
            "reason",
            "error",
            "started_at",
            "finished_at",
            "ray_job_id",
            "stop_requested",
            "driver_pid",
        )
    }


@pytest.mark.parametrize("status,event", sorted(EXPECTED), ids=lambda x: str(x))
def test_every_status_and_event(store, status, event):
    sweep_id = _sweep_in(store, status)
    trial = lifecycle.trial_started(store, sweep_id, "t1", {"model": "mlp"}, 3)
    before = _row(store, sweep_id)
    expected = EXPECTED[(status, event)]
    if expected is None:
        with pytest.raises(TransitionError):
            lifecycle.apply(store, sweep_id, event)
        assert _row(store, sweep_id) == before  # a refusal changes nothing
        assert store.get_trial(trial).status == TrialStatus.RUNNING
        return
    assert lifecycle.apply(store, sweep_id, event) == expected
    after = store.get_sweep(sweep_id)
    assert after.status == expected
    assert (after.finished_at is not None) == (expected in lifecycle.TERMINAL)


def test_named_events_write_their_columns(store):
    sid = _sweep_in(store, Q)
    t = lifecycle.trial_started(store, sid, "t1", {"model": "mlp"}, 3)
    lifecycle.claim(store, sid, "host-a", 123, "/exp/sid")
    s = store.get_sweep(sid)
    assert (s.status, s.driver_host, s.driver_pid, s.experiment_path) == (R, "host-a", 123, "/exp/sid")
    lifecycle.interrupt(store, sid, Reason.DISK_LOW, "the disk is full")
    s = store.get_sweep(sid)
    assert (s.status, s.reason, s.error) == (INT, "disk_low", "the disk is full")
    assert store.get_trial(t).status == TrialStatus.PENDING  # a clean interrupt: it continues on resume
    lifecycle.requeue(store, sid)
    s = store.get_sweep(sid)
    assert (s.status, s.reason, s.error, s.finished_at) == (Q, None, None, None)


def _claimed_by(store: Store, pid: int) -> str:
    sid = store.create_sweep({"name": "x"}, "synthetic:10", "v").id
    lifecycle.claim(store, sid, socket.gethostname(), pid, "/tmp/x")
    return sid


def test_a_lost_driver_marks_its_running_trials_errored(store):
    gone = subprocess.Popen(["sleep", "30"])
    sid = _claimed_by(store, gone.pid)
    t = lifecycle.trial_started(store, sid, "t1", {"model": "mlp"}, 3)
    assert lifecycle.reconcile_local_driver(store, store.get_sweep(sid)).status == R  # alive: left alone
    gone.kill()
    gone.wait()
    assert lifecycle.reconcile_local_driver(store, store.get_sweep(sid)).status == INT
    s = store.get_sweep(sid)
    assert s.reason == "driver_lost" and f"pid {gone.pid}" in s.error
    assert store.get_trial(t).status == TrialStatus.ERRORED


def test_a_pid_reused_after_the_driver_died_is_not_the_driver(store):
    sid = _claimed_by(store, os.getpid())  # this process claimed it just now: alive
    assert lifecycle.reconcile_local_driver(store, store.get_sweep(sid)).status == R
    # The same pid named by a claim made long before this process started: the driver that
    # claimed it died, and the pid now belongs to another process.
    store.update_sweep(sid, started_at=dt.datetime(2000, 1, 1))
    assert lifecycle.reconcile_local_driver(store, store.get_sweep(sid)).status == INT


def test_job_path_and_remote_drivers_are_left_to_their_own_checks(store):
    sid = _claimed_by(store, 2**22 + 12345)  # no such pid
    store.update_sweep(sid, ray_job_id="raysubmit_x")  # judged by the Ray Jobs API (Jobs.sync)
    assert lifecycle.reconcile_local_driver(store, store.get_sweep(sid)).status == R
    other = _claimed_by(store, 2**22 + 12345)
    store.update_sweep(other, driver_host="another-host")  # its pid means nothing here
    assert lifecycle.reconcile_local_driver(store, store.get_sweep(other)).status == R


@pytest.mark.parametrize(
    "noted,stop,unfinished,errored,total,status,reason",
    [
        (None, False, 0, 0, 3, OK, None),
        (None, False, 0, 3, 3, F, "all_trials_failed"),
        (None, False, 0, 2, 3, OK, None),
        (None, False, 2, 0, 3, INT, "driver_interrupted"),
        (None, True, 1, 0, 3, S, None),
        (Reason.DISK_LOW, False, 1, 0, 3, INT, "disk_low"),
    ],
)
def test_driver_ended(store, noted, stop, unfinished, errored, total, status, reason):
    sid = _sweep_in(store, R)
    if noted:
        lifecycle.note(store, sid, noted, "low")
    if stop:
        store.update_sweep(sid, stop_requested=True)
    assert lifecycle.driver_ended(store, sid, unfinished, errored, total) == status
    assert store.get_sweep(sid).reason == reason


@pytest.mark.parametrize(
    "start,job,status,reason",
    [
        (R, "RUNNING", R, None),
        (Q, "PENDING", Q, None),
        (R, "SUCCEEDED", OK, None),
        (R, "STOPPED", S, None),
        (R, "FAILED", INT, "job_failed"),
        (Q, "FAILED", F, "job_failed"),
        (R, None, INT, "job_unknown"),
        (Q, None, F, "job_unknown"),
        (OK, "FAILED", OK, None),  # the driver's own end stands
    ],
)
def test_reconcile_with_the_ray_job(store, start, job, status, reason):
    sid = _sweep_in(store, start)
    store.update_sweep(sid, ray_job_id="raysubmit_1")
    assert lifecycle.reconcile(store, store.get_sweep(sid), job, "boom") == status
    assert store.get_sweep(sid).reason == reason


def test_request_stop(store):
    queued = _sweep_in(store, Q)
    assert lifecycle.request_stop(store, queued) == S  # not yet submitted: stopped at once
    running = _sweep_in(store, R)
    assert lifecycle.request_stop(store, running) == "stopping"
    assert store.get_sweep(running).stop_requested and store.get_sweep(running).status == R
    with pytest.raises(NotFound):
        lifecycle.request_stop(store, "sw-nope")


def test_a_silent_cluster_interrupts_its_sweeps_after_the_grace(store, tmp_path):
    from cifar_sweeps.cluster.jobs import Jobs
    from cifar_sweeps.settings import Settings

    now = [100.0]  # the Jobs' clock, in seconds: moved by the test, not slept through
    settings = Settings(results_dir=tmp_path, dashboard_url="http://127.0.0.1:9", cluster_lost_after_s=30)
    jobs = Jobs(settings, store, clock=lambda: now[0])
    running, queued = _sweep_in(store, R), _sweep_in(store, Q)
    for sid in (running, queued):
        store.update_sweep(sid, ray_job_id=f"raysubmit_{sid}")
    assert jobs.sync(store.get_sweep(running)).status == R  # within the grace: a head may be restarting
    now[0] += 29.0
    assert jobs.sync(store.get_sweep(running)).status == R  # still within it
    now[0] += 2.0
    lost = jobs.sync(store.get_sweep(running))
    assert (lost.status, lost.reason) == (INT, "cluster_lost") and "http://127.0.0.1:9" in lost.error
    never = jobs.sync(store.get_sweep(queued))
    assert (never.status, never.reason) == (F, "cluster_lost")


# Trials: what each event does from each status (None: refused, the row unchanged).
R, P, TE, ES, ER = (
    TrialStatus.RUNNING,
    TrialStatus.PENDING,
    TrialStatus.TERMINATED,
    TrialStatus.EARLY_STOPPED,
    TrialStatus.ERRORED,
)
TRIAL_EXPECTED = {
    **{(s, e): None for s in TrialStatus for e in TrialEvent},
    **{(s, TrialEvent.START): R for s in (P, R, ER)},
    **{(s, TrialEvent.COMPLETE): TE for s in (P, R, ER)},
    **{(s, TrialEvent.EARLY_STOP): ES for s in (P, R, ER)},
    **{(s, TrialEvent.ERROR): ER for s in (P, R, ER)},
    (R, TrialEvent.PAUSE): P,
    (R, TrialEvent.ABANDON): ER,
}
# The events that lead a new (running) trial to each status.
TRIAL_PATHS = {
    R: [],
    P: [TrialEvent.PAUSE],
    TE: [TrialEvent.COMPLETE],
    ES: [TrialEvent.EARLY_STOP],
    ER: [TrialEvent.ERROR],
}


@pytest.mark.parametrize("status,event", sorted(TRIAL_EXPECTED), ids=lambda x: str(x))
def test_every_trial_status_and_event(store, status, event):
    sid = store.create_sweep({"name": "x"}, "synthetic:10", "v").id
    tid = lifecycle.trial_started(store, sid, "t1", {"model": "mlp"}, 3)
    for e in TRIAL_PATHS[status]:
        lifecycle.apply_trials(store, e, trial_id=tid)
    before = store.get_trial(tid)
    assert before.status == status
    moved = lifecycle.apply_trials(store, event, trial_id=tid, error="why" if event == TrialEvent.ERROR else None)
    after = store.get_trial(tid)
    expected = TRIAL_EXPECTED[(status, event)]
    if expected is None:
        assert moved == 0 and (after.status, after.finished_at, after.error) == (
            before.status,
            before.finished_at,
            before.error,
        )
        return
    assert moved == 1 and after.status == expected
    assert (after.finished_at is None) == (expected in (R, P))


def test_trials_a_restore_does_not_hold_say_why(store):
    """After a driver is lost, its abandoned search trials that Tune's restored state lacks
    get the reason; restored ones, repeats (rerun by id) and trials with their own error
    are left as they are, and the driver's end time stays."""
    gone = subprocess.Popen(["sleep", "30"])
    sid = _claimed_by(store, gone.pid)
    started = {k: lifecycle.trial_started(store, sid, k, {"model": "mlp"}, 3) for k in ("kept", "lost", "failed")}
    repeat = lifecycle.trial_started(store, sid, "kept-s1", {"model": "mlp"}, 3, repeat_of=started["kept"])
    lifecycle.trial_ended(store, started["failed"], TrialStatus.ERRORED, "ValueError: boom")
    gone.kill()
    gone.wait()
    lifecycle.reconcile_local_driver(store, store.get_sweep(sid))
    ended = store.get_trial(started["lost"]).finished_at

    assert lifecycle.trials_not_restored(store, sid, {"kept", "failed"}) == [started["lost"]]
    lost = store.get_trial(started["lost"])
    assert (lost.status, lost.error, lost.finished_at) == (TrialStatus.ERRORED, lifecycle.NOT_RESTORED, ended)
    assert store.get_trial(started["kept"]).error is None
    assert store.get_trial(repeat).error is None
    assert store.get_trial(started["failed"]).error == "ValueError: boom"
    assert lifecycle.trials_not_restored(store, sid, {"kept", "failed"}) == []  # said once


def _closed_port_with_404() -> int:
    """A local port whose number holds "404" (40400-40499) and that nothing listens on."""
    import socket

    for port in range(40400, 40500):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port  # bound, then closed at once: a connection to it is refused
    raise AssertionError("no free port in 40400-40499")


def test_a_head_whose_port_holds_404_is_not_taken_for_an_unknown_job():
    """A head on a port such as 40461 that is gone answers with a connection error naming the
    port: that is silence (the cluster-lost timer runs), not Ray's "no such job"."""
    import requests

    from cifar_sweeps.cluster.jobs import job_not_found

    port = _closed_port_with_404()
    with pytest.raises(requests.ConnectionError) as refused:
        requests.get(f"http://127.0.0.1:{port}/api/jobs/raysubmit_1", timeout=5)
    assert "404" in str(refused.value) and not job_not_found(refused.value)
    # Ray's Jobs SDK on an unknown job (SubmissionClient._raise_error's wording):
    assert job_not_found(RuntimeError("Request failed with status code 404: Job raysubmit_1 does not exist."))


def test_refit_queues_an_ended_sweep_with_refit_on_and_refuses_what_it_cant(store, tmp_path):
    from cifar_sweeps.errors import SpecError, SweepError
    from tests.helpers.importance import add_trial
    from tests.helpers.specs import GOOD

    def ended(spec: dict, trials: int = 1) -> str:
        sweep = store.create_sweep(spec, "synthetic:100", "v")
        lifecycle.claim(store, sweep.id, "here", 1, str(tmp_path / sweep.id))
        for i in range(trials):
            add_trial(store, sweep.id, f"t{i}", {"model": "mlp", "epochs": 2, "lr": 0.01}, 0.5 + i / 10)
        lifecycle.finish(store, sweep.id)
        return sweep.id

    sweep_id = ended(GOOD)
    assert "refit" not in store.sweep(sweep_id).spec
    assert lifecycle.refit(store, sweep_id) == SweepStatus.QUEUED
    assert store.sweep(sweep_id).spec["refit"] is True and store.sweep(sweep_id).spec["num_samples"] == 2
    with pytest.raises(SweepError, match="refit it once it has ended"):
        lifecycle.refit(store, sweep_id)

    refused = {
        "no finished trial": ended(GOOD, trials=0),
        "budget.epochs has 2 left": ended({**GOOD, "budget": {"epochs": 4}}, trials=2),
    }
    with pytest.raises(SweepError, match="nothing to refit"):
        lifecycle.refit(store, refused["no finished trial"])
    with pytest.raises(SpecError, match="needs up to 3 trial-epochs, and budget.epochs has 2 left"):
        lifecycle.refit(store, refused["budget.epochs has 2 left"])
    never = store.create_sweep(GOOD, "synthetic:100", "v")
    lifecycle.request_stop(store, never.id)
    with pytest.raises(SweepError, match="never started"):
        lifecycle.refit(store, never.id)
    for sweep_id in [*refused.values(), never.id]:  # a refusal changes nothing
        assert "refit" not in store.sweep(sweep_id).spec and store.sweep(sweep_id).status != SweepStatus.QUEUED

    done = ended({**GOOD, "refit": True})
    source = store.trials(done)[0]
    row = lifecycle.trial_started(
        store, done, "refit", {"model": "mlp", "epochs": 2, "lr": 0.01}, 1, refit_of=source.id
    )
    lifecycle.trial_ended(store, row, "terminated")
    with pytest.raises(SweepError, match=f"has its refit already: trial {row}, of {source.id}"):
        lifecycle.refit(store, done)


def test_a_sweep_queued_for_a_driver_of_its_own_is_not_the_services_to_submit(store, tmp_path):
    """`cifar-sweeps refit` (repeat, extend, continue, run) in a terminal queues the sweep held
    by its own process: a service on the same store (Store.next_queued, what its queue
    drains) leaves it alone, a stop asked meanwhile reaches the driver, and a driver killed
    before it started leaves the sweep failed, naming it, not queued for ever."""
    from tests.helpers.importance import add_trial
    from tests.helpers.specs import GOOD

    def ended() -> str:
        sweep = store.create_sweep(GOOD, "synthetic:100", "v")
        lifecycle.claim(store, sweep.id, socket.gethostname(), os.getpid(), str(tmp_path / sweep.id))
        add_trial(store, sweep.id, "t0", {"model": "mlp", "epochs": 2, "lr": 0.01}, 0.5)
        lifecycle.finish(store, sweep.id)
        return sweep.id

    held, served = ended(), ended()
    lifecycle.refit(store, held, held=True)
    lifecycle.refit(store, served)  # POST /sweeps/{id}/refit: for the service's queue
    assert store.get_sweep(held).driver_pid == os.getpid()
    assert store.get_sweep(served).driver_pid is None  # the earlier run's driver is not kept
    assert store.next_queued().id == served
    assert lifecycle.reconcile_local_driver(store, store.get_sweep(held)).status == Q  # its driver lives

    assert lifecycle.request_stop(store, held) == "stopping"  # its driver is starting: it stops it
    lifecycle.claim(store, held, socket.gethostname(), os.getpid(), str(tmp_path / held))
    assert store.get_sweep(held).stop_requested  # the claim keeps the ask

    gone = subprocess.Popen(["sleep", "30"])
    gone.kill()
    gone.wait()
    for sid, path in ((ended(), "resume the sweep"), (store.create_sweep(GOOD, "s", "v").id, "submit it again")):
        if store.get_sweep(sid).status == OK:
            lifecycle.refit(store, sid, held=True)
        store.update_sweep(sid, driver_host=socket.gethostname(), driver_pid=gone.pid)
        lifecycle.reconcile_local_drivers(store)
        s = store.get_sweep(sid)
        assert (s.status, s.reason) == (F, "driver_lost") and f"pid {gone.pid}" in s.error and path in s.error
