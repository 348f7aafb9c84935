"""Schema migrations: a store made by the code before migrations existed (tests/fixtures/
store_v0.py is that commit's store.py, verbatim) upgrades in place on start, with every row
kept, on SQLite and on a real PostgreSQL; two processes starting on the same old store at
once both come up; and the ORM matches what the migrations build."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import create_engine, inspect

from cifar_sweeps.store.migrations import current_revision, head_revision
from cifar_sweeps.store.queries import Store
from cifar_sweeps.store.tables import Base
from tests.fixtures import store_v0
from tests.helpers.paths import REPO

_db = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("postgres").new_database(
        f"mig{next(_db)}_{tmp_path.name[-12:].lower()}".replace("-", "_")
    )


def _metrics(epoch: int, val_acc: float) -> dict:
    return {
        "epoch": epoch,
        "train_loss": 1.0,
        "train_acc": 0.5,
        "val_loss": 1 - val_acc,
        "val_acc": val_acc,
        "lr": 0.1,
        "seconds": 1.0,
        "images_per_s": 100.0,
        "test_acc": val_acc - 0.01,
        "time_total_s": 2.0,
    }


def make_old_store(url: str) -> dict:
    """Two sweeps, three trials, five epochs, written by the old code; returns what was written."""
    old = store_v0.Store(url)
    a = old.create_sweep({"name": "a", "fixed": {"model": "mlp"}}, "synthetic:10", "0.1.0+ec4e1a5")
    b = old.create_sweep({"name": "b"}, "cifar.tar.xz", "0.1.0+ec4e1a5")
    old.set_status(a.id, "succeeded")
    old.update_sweep(b.id, error="interrupted: the results folder /r is down to 10 MiB free")
    old.set_status(b.id, "interrupted")
    trials = [
        old.trial_started(a.id, "t1", {"model": "mlp", "lr": 0.1}, 3),
        old.trial_started(a.id, "t2", {"model": "mlp", "lr": 0.01}, 3),
        old.trial_started(b.id, "t3", {"model": "simple_cnn"}, 2),
    ]
    for tid, accs in zip(trials, ([0.3, 0.5], [0.2, 0.25], [0.4]), strict=True):
        for i, acc in enumerate(accs, 1):
            old.trial_epoch(tid, _metrics(i, acc))
        old.trial_finished(tid, "terminated")
    old.engine.dispose()
    return {"sweeps": {a.id: "succeeded", b.id: "interrupted"}, "trials": trials, "a": a.id, "b": b.id}


def test_an_old_store_upgrades_in_place_with_every_row_kept(url):
    old = make_old_store(url)
    with create_engine(url).connect() as c:
        assert current_revision(c) is None and "reason" not in {x["name"] for x in inspect(c).get_columns("sweeps")}
    store = Store(url)
    with store.engine.connect() as c:
        assert current_revision(c) == head_revision()
    sweeps, total = store.list_sweeps()
    assert total == 2 and {s.id: s.status for s in sweeps} == old["sweeps"]
    assert store.get_sweep(old["b"]).reason == "disk_low"  # the old error prefix became the column
    assert {s.id: s.dataset for s in sweeps} == {
        old["b"]: "cifar10",
        next(iter(set(old["sweeps"]) - {old["b"]})): "synthetic",
    }
    board, n = store.leaderboard()  # across sweeps: grouped by data set (0009), best first within each
    assert n == 3 and [round(t.val_acc, 2) for t in board] == [0.4, 0.5, 0.25]
    assert [len(store.epochs(t)) for t in old["trials"]] == [2, 2, 1]
    assert store.get_trial(old["trials"][0]).config == {"model": "mlp", "lr": 0.1}
    # ... and it takes new writes.
    sw = store.create_sweep({"name": "new"}, "synthetic:10", "now")
    assert store.list_sweeps()[1] == 3 and store.get_sweep(sw.id).reason is None


OPEN = textwrap.dedent("""
    import sys
    from cifar_sweeps.store.queries import Store
    s = Store(sys.argv[1])
    print("up", s.list_sweeps()[1])
""")


def test_two_processes_starting_on_one_old_store_both_come_up(url):
    make_old_store(url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN, url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "up 2"
    with create_engine(url).connect() as c:
        assert current_revision(c) == head_revision()


def test_the_orm_matches_the_migrations(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store(f"sqlite:///{tmp_path / 'new.db'}")
    # Alembic can't compare expression indexes (val_acc DESC): those are checked by name.
    expression = {"ix_trials_rank", "ix_trials_sweep_rank", "ix_trials_model_rank"}
    with store.engine.connect() as c:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(c), Base.metadata)
            if not (d[0] in ("add_index", "remove_index") and d[1].name in expression)
        ]
        assert expression <= {ix["name"] for ix in inspect(c).get_indexes("trials")}
    assert diffs == [], diffs


@pytest.mark.parametrize(
    "start",
    ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012", "0013"],
)
def test_a_store_at_each_earlier_revision_upgrades_to_the_head_with_every_row_kept(url, start):
    """A store left at any earlier revision (what each earlier release made) upgrades in one
    step to the head: the newest columns (sweeps.warm_trials, 0005; trials.repeat_of, 0006;
    sweeps.plan, 0007; the trials' costs, 0008; trials.refit_of and train_images, 0010;
    trials.continue_of, 0012; trials.exploits, 0013) come in
    empty; the data set (0009) is filled in from each sweep's data source; an epoch without
    validation scores (a refit's, 0010) can be written after it."""
    from alembic import command

    from cifar_sweeps.store.migrations import _config

    old = make_old_store(url)
    with create_engine(url).connect() as c:
        command.upgrade(_config(c), start)
        c.commit()
        assert current_revision(c) == start
    store = Store(url)
    with store.engine.connect() as c:
        assert current_revision(c) == head_revision()
    sweeps, total = store.list_sweeps()
    assert total == 2 and {s.id: s.status for s in sweeps} == old["sweeps"]
    assert all(s.warm_trials is None and s.plan is None for s in sweeps)
    # 0011: a sweep that had ended counts as announced (its webhooks are not told old news)
    assert any(s.finished_at for s in sweeps) and all(s.notified_at == s.finished_at for s in sweeps)
    assert {s.data_source: s.dataset for s in sweeps} == {"synthetic:10": "synthetic", "cifar.tar.xz": "cifar10"}
    assert [len(store.epochs(t)) for t in old["trials"]] == [2, 2, 1]
    assert all(store.get_trial(t).repeat_of is None and store.get_trial(t).params is None for t in old["trials"])
    assert all(store.get_trial(t).refit_of is None and store.get_trial(t).train_images is None for t in old["trials"])
    assert all(store.get_trial(t).continue_of is None for t in old["trials"])  # 0012: none was continued
    assert all(store.get_trial(t).exploits is None for t in old["trials"])  # 0013: no pbt step
    step = {"at_epoch": 2, "from_epoch": 2, "source": old["trials"][1], "before": {"lr": 0.1}, "after": {"lr": 0.12}}
    store.trial_exploited(old["trials"][0], step)
    assert store.get_trial(old["trials"][0]).exploits == [step]
    refit, _ = store.create_trial(old["a"], "refit", {"model": "mlp", "lr": 0.1}, 3, refit_of=old["trials"][0])
    store.trial_epoch(refit, {**_metrics(1, 0.5), "val_acc": float("nan"), "val_loss": float("nan")})
    assert store.epochs(refit)[0].val_acc is None and store.get_trial(refit).best_epoch == 1
    assert store.get_trial(refit).val_acc == store.get_trial(old["trials"][0]).val_acc  # its source's
    store.update_sweep(old["b"], warm_trials=3)
    assert store.get_sweep(old["b"]).warm_trials == 3


def test_a_sweep_the_old_code_queued_again_is_still_the_services_to_submit(url):
    """0014: the code before it left a sweep queued again (POST /sweeps/{id}/resume, refit,
    ...) with its earlier run's driver in driver_host and driver_pid; the service now leaves
    a queued sweep with a driver to that driver. The upgrade clears them on queued sweeps
    only, so the service still submits it, and an ended sweep keeps the driver that ran it."""
    from alembic import command
    from sqlalchemy import text

    from cifar_sweeps.store.migrations import _config

    old = make_old_store(url)
    with create_engine(url).connect() as c:
        command.upgrade(_config(c), "0013")
        c.execute(
            text("UPDATE sweeps SET status = 'queued', driver_host = 'h', driver_pid = 42 WHERE id = :b"),
            {"b": old["b"]},
        )
        c.execute(text("UPDATE sweeps SET driver_host = 'h', driver_pid = 41 WHERE id = :a"), {"a": old["a"]})
        c.commit()
    store = Store(url)
    b, a = store.get_sweep(old["b"]), store.get_sweep(old["a"])
    assert (b.status, b.driver_host, b.driver_pid) == ("queued", None, None)
    assert (a.status, a.driver_host, a.driver_pid) == ("succeeded", "h", 41)
    assert store.next_queued().id == old["b"]
