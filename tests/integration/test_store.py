"""The store on SQLite and on a real PostgreSQL server: same code, same results."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import threading

import pytest

from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import Store

_db_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'store.db'}")
    pg = request.getfixturevalue("postgres")
    return Store(pg.new_database(f"t{next(_db_counter)}_{tmp_path.name[-20:].lower().replace('-', '_')}"))


def _metrics(epoch: int, val_acc: float, test_acc: float | None = None) -> dict:
    return {
        "epoch": epoch,
        "train_loss": 1.0 / epoch,
        "train_acc": val_acc,
        "val_loss": 1 - val_acc,
        "val_acc": val_acc,
        "lr": 0.1,
        "seconds": 1.0,
        "images_per_s": 100.0,
        "test_acc": test_acc,
        "time_total_s": float(epoch),
    }


def test_sweep_lifecycle(store):
    sweep = store.create_sweep({"name": "a", "x": [1, 2]}, "synthetic:10", "v1")
    assert store.get_sweep(sweep.id).status == "queued"
    lifecycle.claim(store, sweep.id, "host", 1, "/exp")
    got = store.get_sweep(sweep.id)
    assert got.status == "running" and got.started_at is not None and got.spec == {"name": "a", "x": [1, 2]}
    lifecycle.fail(store, sweep.id, lifecycle.Reason.DRIVER_ERROR, "boom")
    got = store.get_sweep(sweep.id)
    assert got.status == "failed" and got.error == "boom" and got.finished_at is not None
    assert got.reason == "driver_error"
    rows, total = store.list_sweeps()
    assert total == 1 and rows[0].id == sweep.id
    store.delete_sweep(sweep.id)
    assert store.get_sweep(sweep.id) is None


def test_trials_epochs_and_leaderboard(store):
    a = store.create_sweep({"name": "a"}, "s", "v")
    b = store.create_sweep({"name": "b"}, "s", "v")
    accs = {("a", "t1"): 0.5, ("a", "t2"): 0.9, ("b", "t3"): 0.7, ("b", "t4"): None}
    for (sw, t), acc in accs.items():
        sid = a.id if sw == "a" else b.id
        tid = lifecycle.trial_started(store, sid, t, {"model": "mlp" if t != "t3" else "simple_cnn", "lr": 0.1}, 3)
        if acc is not None:
            store.trial_epoch(tid, _metrics(1, acc - 0.1))
            store.trial_epoch(tid, _metrics(2, acc, test_acc=acc - 0.05))
            store.trial_epoch(tid, _metrics(2, acc, test_acc=acc - 0.05))  # replayed: written once
            store.trial_checkpoint(tid, f"/ckpt/{t}/model.pt")
            lifecycle.trial_ended(store, tid, "terminated")
    rows, total = store.leaderboard()
    assert total == 4
    assert [r.tune_trial_id for r in rows] == ["t2", "t3", "t1", "t4"]  # by val_acc, no-epoch last
    t2 = rows[0]
    assert t2.val_acc == 0.9 and t2.best_epoch == 2 and t2.epochs == 2 and t2.test_acc == pytest.approx(0.85)
    assert len(store.epochs(t2.id)) == 2
    assert store.leaderboard(sweep_id=b.id)[1] == 2
    assert [r.tune_trial_id for r in store.leaderboard(model="simple_cnn")[0]] == ["t3"]
    page, total = store.leaderboard(limit=2, offset=2)
    assert [r.tune_trial_id for r in page] == ["t1", "t4"] and total == 4
    assert store.sweep_summary(a.id)[1].tune_trial_id == "t2"
    assert store.sweep_summary(b.id)[0] == {"terminated": 1, "running": 1}
    page, total, names = store.leaderboard_page(limit=2)
    assert [r.tune_trial_id for r in page] == ["t2", "t3"] and total == 4
    assert names == {a.id: "a", b.id: "b"}
    lifecycle.fail(store, b.id, lifecycle.Reason.DRIVER_ERROR, "boom")  # its running trial ends errored
    assert store.sweep_summary(b.id)[0] == {"terminated": 1, "errored": 1}


def test_queue_order_and_stop_flag(store):
    first = store.create_sweep({"name": "1"}, "s", "v")
    store.create_sweep({"name": "2"}, "s", "v")
    assert store.next_queued().id == first.id
    store.update_sweep(first.id, stop_requested=True)
    assert store.stop_requested(first.id) and store.next_queued().id != first.id


def _driver(url: str, sweep_id: str, n_trials: int, n_epochs: int) -> None:
    s = Store(url)
    for t in range(n_trials):
        tid = lifecycle.trial_started(s, sweep_id, f"trial{t:03d}", {"model": "mlp", "lr": t / 100}, n_epochs)
        for e in range(1, n_epochs + 1):
            s.trial_epoch(tid, _metrics(e, min(0.99, 0.1 + 0.01 * e + 0.001 * t)))
        lifecycle.trial_ended(s, tid, "terminated")


def test_two_concurrent_drivers_and_api_reads(store):
    """Two sweep drivers (separate processes) write while a reader polls the leaderboard:
    no lock errors, nothing lost, nothing duplicated."""
    sweeps = [store.create_sweep({"name": f"d{i}"}, "s", "v").id for i in range(2)]
    n_trials, n_epochs = 15, 8
    errors: list[BaseException] = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            try:
                store.leaderboard(limit=20)
                store.list_sweeps()
            except BaseException as e:  # noqa: BLE001 (any error is a failure here)
                errors.append(e)

    th = threading.Thread(target=reader)
    th.start()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_driver, args=(store.url, sid, n_trials, n_epochs)) for sid in sweeps]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    done.set()
    th.join(30)
    assert all(p.exitcode == 0 for p in procs) and not errors, errors
    for sid in sweeps:
        trials = store.trials(sid)
        assert len(trials) == n_trials and len({t.id for t in trials}) == n_trials
        assert all(len(store.epochs(t.id)) == n_epochs and t.status == "terminated" for t in trials)
    assert store.leaderboard()[1] == 2 * n_trials


def test_data_version_moves_on_every_commit(store):
    """The GET cache revalidates by it: a commit by another process (a sweep driver) must
    change it, a read must not."""
    other = Store(store.url)
    v0 = store.data_version()
    assert v0 is not None
    store.list_sweeps()
    assert store.data_version() == v0
    other.create_sweep({"name": "x"}, "synthetic:1", "v")
    v1 = store.data_version()
    assert v1 != v0
    store.create_sweep({"name": "y"}, "synthetic:1", "v")
    assert store.data_version() not in (v0, v1)


def test_a_view_of_one_sweep_changes_version_only_with_that_sweep(store):
    from cifar_sweeps.service.cache import ViewVersions

    view_version = ViewVersions(store)
    a = store.create_sweep({"name": "a"}, "s", "v")
    b = store.create_sweep({"name": "b"}, "s", "v")
    ta = lifecycle.trial_started(store, a.id, "t1", {"model": "mlp"}, 3)
    views = {
        "one": f"/sweeps/{a.id}".encode(),
        "board": f"/leaderboard?sweep_id={a.id}&limit=5".encode(),
        "all": b"/leaderboard?limit=5",
    }
    before = {k: view_version(v) for k, v in views.items()}
    tb = lifecycle.trial_started(store, b.id, "t2", {"model": "mlp"}, 3)
    store.trial_epoch(tb, _metrics(1, 0.5))
    after_b = {k: view_version(v) for k, v in views.items()}
    assert after_b["one"] == before["one"] and after_b["board"] == before["board"]
    if before["all"] is not None:  # a database with a global version
        assert after_b["all"] != before["all"]
    for write in (
        lambda: store.trial_epoch(ta, _metrics(1, 0.4)),
        lambda: store.trial_checkpoint(ta, "/x"),
        lambda: lifecycle.trial_ended(store, ta, "terminated"),
        lambda: store.update_sweep(a.id, error="e"),
    ):
        old = view_version(views["one"])
        write()
        assert view_version(views["one"]) != old


def test_each_epoch_records_its_node(store):
    a = store.create_sweep({"name": "a"}, "s", "v")
    t = lifecycle.trial_started(store, a.id, "t1", {"model": "mlp"}, 3)
    store.trial_epoch(t, {**_metrics(1, 0.3), "node_id": "node-a"})
    store.trial_epoch(t, {**_metrics(2, 0.4), "node_id": "node-b"})  # retried on another node
    assert [(e.epoch, e.node_id) for e in store.epochs(t)] == [(1, "node-a"), (2, "node-b")]
    assert store.get_trial(t).node_id == "node-b"


def test_a_trial_keeps_its_first_end(store):
    """A resumed driver reports again the end of a trial the store already holds as ended
    (schedulers.py stops it instead of running it): the first end, and its time, stay. An
    errored trial that is retried runs, and ends, again."""
    sweep = store.create_sweep({"name": "a"}, "s", "v")
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp"}, 3)
    lifecycle.trial_ended(store, tid, "early_stopped")
    first = store.get_trial(tid)
    lifecycle.trial_ended(store, tid, "terminated")
    again = store.get_trial(tid)
    assert (again.status, again.finished_at) == ("early_stopped", first.finished_at)
    lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp"}, 3)  # restored, then stopped by its scheduler
    lifecycle.trial_ended(store, tid, "terminated")
    again = store.get_trial(tid)
    assert (again.status, again.finished_at) == ("early_stopped", first.finished_at)

    tid2 = lifecycle.trial_started(store, sweep.id, "t2", {"model": "mlp"}, 3)
    lifecycle.trial_ended(store, tid2, "errored", "boom")
    lifecycle.trial_started(store, sweep.id, "t2", {"model": "mlp"}, 3)  # the retry
    assert store.get_trial(tid2).status == "running"
    lifecycle.trial_ended(store, tid2, "terminated")
    assert store.get_trial(tid2).status == "terminated" and store.get_trial(tid2).error is None


def test_a_new_best_drops_the_test_of_the_previous_one_until_it_is_tested(store):
    """A trial tests its best weights at its scheduler's rungs and its end: a best found in
    between has no test yet, and the stored test must not be the previous weights'."""
    sweep = store.create_sweep({"name": "a"}, "s", "v")
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "mlp"}, 6)
    store.trial_epoch(tid, _metrics(2, 0.6, test_acc=0.58))
    store.trial_epoch(tid, _metrics(3, 0.5))  # worse: the tested best stays
    assert store.get_trial(tid).test_acc == pytest.approx(0.58)
    store.trial_epoch(tid, _metrics(4, 0.7))  # a new best, untested
    assert (store.get_trial(tid).val_acc, store.get_trial(tid).test_acc) == (0.7, None)
    store.trial_tested(tid, 0.69)  # tested after the run (a sweep's budget cut it)
    assert store.get_trial(tid).test_acc == pytest.approx(0.69)


def test_a_refit_ranks_beside_its_source_first_and_stores_no_validation(store):
    """A refit's row starts with its source's validation scores (it has none of its own), its
    epochs store NULL for them, its last epoch is its model, and it ranks first of the two."""
    sw = store.create_sweep({"name": "r"}, "synthetic:10", "v")
    lifecycle.claim(store, sw.id, "h", 1, "/p")
    src = lifecycle.trial_started(store, sw.id, "t1", {"model": "mlp", "lr": 0.1}, 2)
    other = lifecycle.trial_started(store, sw.id, "t2", {"model": "mlp", "lr": 0.2}, 2)
    store.trial_epoch(src, _metrics(1, 0.7))
    store.trial_epoch(other, _metrics(1, 0.6))
    refit = lifecycle.trial_started(store, sw.id, "refit", {"model": "mlp", "lr": 0.1}, 2, refit_of=src)
    for epoch in (1, 2):
        nan = {"val_acc": float("nan"), "val_loss": float("nan"), "train_images": 12}
        store.trial_epoch(refit, {**_metrics(epoch, 0.0, 0.75 if epoch == 2 else None), **nan})
    row = store.get_trial(refit)
    assert (row.refit_of, row.val_acc, row.val_loss, row.best_epoch) == (src, 0.7, pytest.approx(0.3), 2)
    assert (row.test_acc, row.train_images, row.seconds_to_best) == (0.75, 12, 2.0)
    assert [e.val_acc for e in store.epochs(refit)] == [None, None]
    rows, total = store.leaderboard(sw.id)
    assert [t.id for t in rows] == [refit, src, other] and total == 3
    assert store.sweep_summary(sw.id)[1].id == refit
