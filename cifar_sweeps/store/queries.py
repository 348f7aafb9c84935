"""The SQL store's queries: sweeps, trials, per-epoch metrics, and the leaderboard query
(the tables are tables.py's).

SQLAlchemy 2 on any URL; SQLite by default (WAL, so the API reads while a driver writes).
The schema is Alembic's (migrations/): opening a store upgrades it in place.
The sweep's driver writes through `StoreCallback` (in tuning/driver.py); the API and CLI read.
Every write is one short transaction, so a killed writer leaves no half-written sweep.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    create_engine,
    delete,
    event,
    exc,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cifar_sweeps.errors import NotFound, StoreUnavailable
from cifar_sweeps.store.states import ACTIVE, SweepStatus, TrialStatus
from cifar_sweeps.store.tables import Epoch, Sweep, Trial, new_sweep_id, utcnow
from cifar_sweeps.sweepspec.epoch import MEASURED
from cifar_sweeps.sweepspec.metrics import STORED


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writing driver
        cur.execute("PRAGMA busy_timeout=30000")  # ms; concurrent drivers wait, not fail
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


def db_error_cause(e: exc.DBAPIError) -> str:
    """The database driver's own first line (never the SQL or its parameters)."""
    return str(e.orig).strip().splitlines()[0][:300] if e.orig else type(e).__name__


class Store:
    """All reads and writes of the SQL store."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            self._ensure_sqlite_dir(url)
            self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _sqlite_pragmas(self.engine)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        try:
            from cifar_sweeps.store.migrations import upgrade

            upgrade(self.engine)  # in place, under a lock: see migrations/__init__.py
        except exc.DBAPIError as e:
            where = self.engine.url.render_as_string(hide_password=True)
            raise StoreUnavailable(f"the store {where} can't be opened: {db_error_cause(e)}") from None
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._version_conn = None
        self._version_lock = threading.Lock()

    def data_version(self) -> str | None:
        """A value that changes whenever anything is committed (by any process), cheap to
        read: answers cached from an unchanged store need no recomputing. None where the
        database has no such value. SQLite: `PRAGMA data_version` on a connection of its
        own (it counts the commits of every other connection); PostgreSQL: the WAL position."""
        try:
            with self._version_lock:
                if self.engine.dialect.name == "sqlite":
                    if self.engine.url.database in (None, "", ":memory:"):
                        return None
                    if self._version_conn is None:
                        import sqlite3

                        self._version_conn = sqlite3.connect(self.engine.url.database, check_same_thread=False)
                    return str(self._version_conn.execute("PRAGMA data_version").fetchone()[0])
            if self.engine.dialect.name == "postgresql":
                with self.engine.connect() as c:
                    return str(c.scalar(text("SELECT pg_current_wal_lsn()")))
        except Exception:
            return None
        return None

    def sweep_versions(self) -> dict[str, int]:
        """Every sweep's data_version, in one query (about 1 ms per 1,000 sweeps on SQLite)."""
        with self.sessions() as s:
            return dict(s.execute(select(Sweep.id, Sweep.data_version)).all())

    def sweep_version(self, sweep_id: str) -> int | None:
        """One sweep's data_version (None for no such sweep)."""
        with self.sessions() as s:
            return s.scalar(select(Sweep.data_version).where(Sweep.id == sweep_id))

    @property
    def cheap_versions(self) -> bool:
        """Whether data_version answers without a network round trip (SQLite file): the
        response cache then asks a view's version on the event loop instead of in a thread."""
        return self.engine.dialect.name == "sqlite" and self.engine.url.database not in (None, "", ":memory:")

    @staticmethod
    def _ensure_sqlite_dir(url: str) -> None:
        from pathlib import Path

        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as s, s.begin():
            yield s

    def ping(self) -> None:
        with self.engine.connect() as c:
            c.execute(select(1))

    # ------------------------------------------------------------ sweeps

    def create_sweep(
        self,
        spec: dict,
        data_source: str,
        code_version: str,
        sweep_id: str | None = None,
        plan: dict | None = None,
        driver: dict | None = None,
    ) -> Sweep:
        """A new sweep, queued (every later status change goes through lifecycle.py): for
        the service to submit, or for the driver `driver` names (lifecycle.holder)."""
        sweep = Sweep(
            id=sweep_id or new_sweep_id(),
            name=spec.get("name", "sweep"),
            spec=spec,
            status=SweepStatus.QUEUED.value,
            data_source=data_source,
            code_version=code_version,
            plan=plan,
            **(driver or {}),
        )
        with self.session() as s:
            s.add(sweep)
        return sweep

    def get_sweep(self, sweep_id: str) -> Sweep | None:
        with self.sessions() as s:
            return s.get(Sweep, sweep_id)

    def sweep(self, sweep_id: str) -> Sweep:
        """The sweep, or NotFound naming it."""
        sweep = self.get_sweep(sweep_id)
        if sweep is None:
            raise NotFound(f"no sweep {sweep_id!r} in the store")  # never its URL: it may hold a password
        return sweep

    def update_sweep(self, sweep_id: str, **values: Any) -> None:
        if "status" in values:  # only transition_sweep writes a status, guarded
            raise ValueError("a sweep's status changes through lifecycle.py, not update_sweep")
        with self.session() as s:
            s.execute(update(Sweep).where(Sweep.id == sweep_id).values(**values, data_version=_BUMP))

    def transition_sweep(self, sweep_id: str, allowed_from: set[str], values: dict[str, Any]) -> bool:
        """Write `values` only if the sweep's status is still one of `allowed_from`, in one
        conditional UPDATE (lifecycle.apply's atomic step); False when it was not."""
        values = {k: (v.value if isinstance(v, SweepStatus) else v) for k, v in values.items()}
        with self.session() as s:
            done = s.execute(
                update(Sweep)
                .where(Sweep.id == sweep_id, Sweep.status.in_(sorted(allowed_from)))
                .values(**values, data_version=_BUMP)
            )
            return done.rowcount == 1

    def set_active_spec(self, sweep_id: str, spec: dict[str, Any]) -> bool:
        """Write a queued or running sweep's spec (its live limits: sweepspec/limits.py) in one
        conditional UPDATE; False when the sweep had ended meanwhile (nothing written)."""
        return self.transition_sweep(sweep_id, set(ACTIVE), {"spec": spec})

    def delete_trial(self, trial_id: str) -> None:
        """A trial's row and its epochs (a refit replaced by a new one: tuning/driver.py)."""
        with self.session() as s:
            sweep_id = s.scalar(select(Trial.sweep_id).where(Trial.id == trial_id))
            s.execute(delete(Epoch).where(Epoch.trial_id == trial_id))
            s.execute(delete(Trial).where(Trial.id == trial_id))
            if sweep_id is not None:  # the sweep's cached views are stale now
                s.execute(update(Sweep).where(Sweep.id == sweep_id).values(data_version=_BUMP))

    def delete_sweep(self, sweep_id: str) -> None:
        with self.session() as s:
            sweep = s.get(Sweep, sweep_id)
            if sweep is not None:
                s.delete(sweep)

    def claim_notifications(self, statuses: frozenset, limit: int = 20) -> list[Sweep]:
        """Ended sweeps (of `statuses`) not announced yet, each claimed for this process by
        setting notified_at (a conditional update: two service processes never both send)."""
        with self.sessions() as s:
            ids = s.scalars(
                select(Sweep.id)
                .where(Sweep.notified_at.is_(None), Sweep.status.in_(sorted(statuses)))
                .order_by(Sweep.finished_at)
                .limit(limit)
            ).all()
        claimed = []
        for sweep_id in ids:
            with self.session() as s:
                done = s.execute(
                    update(Sweep).where(Sweep.id == sweep_id, Sweep.notified_at.is_(None)).values(notified_at=utcnow())
                )
            if done.rowcount == 1:
                claimed.append(self.sweep(sweep_id))
        return claimed

    def next_queued(self) -> Sweep | None:
        """The oldest queued sweep not yet submitted (first in, first out); not one queued
        for a driver of its own (a terminal's `cifar-sweeps run`, `refit`, ...: driver_pid)."""
        with self.sessions() as s:
            return s.scalars(
                select(Sweep)
                .where(
                    Sweep.status == SweepStatus.QUEUED,
                    Sweep.ray_job_id.is_(None),
                    Sweep.driver_pid.is_(None),
                    Sweep.stop_requested.is_(False),
                )
                .order_by(Sweep.created_at, Sweep.id)
                .limit(1)
            ).first()

    def list_sweeps(self, limit: int = 50, offset: int = 0, status: str | None = None) -> tuple[list[Sweep], int]:
        q = select(Sweep)
        if status:
            q = q.where(Sweep.status == status)
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            rows = s.scalars(q.order_by(Sweep.created_at.desc(), Sweep.id).limit(limit).offset(offset)).all()
        return list(rows), int(total or 0)

    def count_sweeps(self, statuses) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).where(Sweep.status.in_(sorted(statuses)))) or 0)

    def count_submitted_active(self) -> int:
        """Active sweeps that hold a Ray job: those that count against max_running_sweeps."""
        with self.sessions() as s:
            return int(
                s.scalar(select(func.count()).where(Sweep.status.in_(sorted(ACTIVE)), Sweep.ray_job_id.is_not(None)))
                or 0
            )

    def stop_requested(self, sweep_id: str) -> bool:
        with self.sessions() as s:
            return bool(s.scalar(select(Sweep.stop_requested).where(Sweep.id == sweep_id)))

    # ------------------------------------------------------------ trials (driver writes)

    def create_trial(
        self,
        sweep_id: str,
        tune_trial_id: str,
        config: dict,
        epochs_budget: int | None,
        repeat_of: str | None = None,
        refit_of: str | None = None,
        continue_of: str | None = None,
    ) -> tuple[str, bool]:
        """The trial's row, written running if it is new (every later status change goes
        through lifecycle.py); its id, and whether it was new. A refit's row starts with its
        source's validation scores: it has no validation images of its own."""
        tid = f"{sweep_id}-{tune_trial_id}"
        with self.session() as s:
            created = s.get(Trial, tid) is None
            source = s.get(Trial, refit_of) if created and refit_of else None
            if created:
                s.add(
                    Trial(
                        id=tid,
                        sweep_id=sweep_id,
                        tune_trial_id=tune_trial_id,
                        model=str(config.get("model", "")),
                        config=config,
                        status=TrialStatus.RUNNING.value,
                        epochs_budget=epochs_budget,
                        repeat_of=repeat_of,
                        refit_of=refit_of,
                        continue_of=continue_of,
                        val_acc=source.val_acc if source else None,
                        val_loss=source.val_loss if source else None,
                    )
                )
                _bump(s, sweep_id)
        return tid, created

    def trial_epoch(self, trial_id: str, m: dict[str, Any]) -> None:
        """Record one epoch's metrics; idempotent, so a replayed epoch (after a restore) is
        written once."""
        with self.session() as s:
            t = s.get(Trial, trial_id)
            if t is None:
                return
            epoch, node = int(m["epoch"]), m.get("node_id")
            values = {k: _number(m[k]) for k in MEASURED}
            row = s.scalar(select(Epoch).where(Epoch.trial_id == trial_id, Epoch.epoch == epoch))
            if row is None:
                s.add(Epoch(trial_id=trial_id, epoch=epoch, node_id=node, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)
                row.node_id = node
            t.node_id = node or t.node_id
            t.epochs = max(t.epochs, epoch)
            t.seconds = float(m.get("time_total_s", t.seconds))
            for k in COST_FIELDS:
                if m.get(k) is not None:
                    setattr(t, k, float(m[k]))
            if m.get("train_images") is not None:
                t.train_images = int(m["train_images"])
            if t.refit_of is not None:  # no validation images: its last epoch is its model
                t.best_epoch = epoch
                t.seconds_to_best = _seconds_to(s, trial_id, epoch)
            elif values["val_acc"] is not None and (t.val_acc is None or values["val_acc"] > t.val_acc):
                t.val_acc, t.val_loss, t.best_epoch = values["val_acc"], values["val_loss"], epoch
                t.test_acc = None  # the previous best's: these weights are tested at a rung or the end
                t.seconds_to_best = _seconds_to(s, trial_id, epoch)
            if m.get("test_acc") is not None:
                t.test_acc = float(m["test_acc"])
            _bump(s, t.sweep_id)

    def trial_tested(self, trial_id: str, test_acc: float) -> None:
        """The test accuracy of the trial's best weights, measured after its run ended."""
        with self.session() as s:
            s.execute(update(Trial).where(Trial.id == trial_id).values(test_acc=test_acc))
            _bump_trial(s, trial_id)

    def trial_checkpoint(self, trial_id: str, path: str) -> None:
        with self.session() as s:
            s.execute(update(Trial).where(Trial.id == trial_id).values(checkpoint_path=path))
            _bump_trial(s, trial_id)

    def trial_exploited(self, trial_id: str, exploit: dict[str, Any]) -> None:
        """A step of population-based training (states.Exploit as a dict): appended to the
        trial's list, and its config takes the new values (what it trains with from here)."""
        with self.session() as s:
            t = s.get(Trial, trial_id)
            if t is None:
                return
            t.exploits = [*(t.exploits or []), exploit]
            t.config = {**t.config, **exploit["after"]}
            _bump_trial(s, trial_id)

    def transition_trials(
        self,
        allowed_from: set[str],
        values: dict[str, Any],
        *,
        trial_id: str | None = None,
        sweep_id: str | None = None,
    ) -> int:
        """Write `values` to the trial (or to the sweep's trials) whose status is still one of
        `allowed_from`, in one conditional UPDATE (lifecycle.apply_trials's atomic step); how
        many rows changed."""
        values = {k: (v.value if isinstance(v, TrialStatus) else v) for k, v in values.items()}
        where = [Trial.status.in_(sorted(allowed_from))]
        where.append(Trial.id == trial_id if trial_id is not None else Trial.sweep_id == sweep_id)
        with self.session() as s:
            done = s.execute(update(Trial).where(*where).values(**values)).rowcount
            if trial_id is not None:
                _bump_trial(s, trial_id)
            else:
                _bump(s, sweep_id)
            return done

    # ------------------------------------------------------------ reads

    def measured_epochs(self, model: str, limit: int) -> list[tuple[float, dict, dict, str]]:
        """The most recent epochs of `model`'s trials: (seconds, the trial's config, its
        sweep's spec, its data source), what plan.py calibrates throughput from."""
        with self.sessions() as s:
            rows = s.execute(
                select(Epoch.seconds, Trial.config, Sweep.spec, Sweep.data_source)
                .join(Trial, Epoch.trial_id == Trial.id)
                .join(Sweep, Trial.sweep_id == Sweep.id)
                .where(Trial.model == model, Epoch.epoch > 1)  # the first epoch pays one-time costs
                .order_by(Epoch.id.desc())
                .limit(limit)
            ).all()
        return [tuple(r) for r in rows]

    def get_trial(self, trial_id: str) -> Trial | None:
        with self.sessions() as s:
            return s.get(Trial, trial_id)

    def trial(self, trial_id: str) -> Trial:
        """The trial, or NotFound naming it."""
        trial = self.get_trial(trial_id)
        if trial is None:
            raise NotFound(f"no trial {trial_id!r}")
        return trial

    def epochs(self, trial_id: str) -> list[Epoch]:
        with self.sessions() as s:
            return list(s.scalars(select(Epoch).where(Epoch.trial_id == trial_id).order_by(Epoch.epoch)))

    def epoch_keys(self, sweep_id: str) -> set[tuple[str, int]]:
        """(Tune trial id, epoch) of every epoch the sweep's trials have recorded: what the
        sweep has spent of an epoch budget (a replayed epoch is one row, counted once)."""
        with self.sessions() as s:
            rows = s.execute(
                select(Trial.tune_trial_id, Epoch.epoch)
                .join(Epoch, Epoch.trial_id == Trial.id)
                .where(Trial.sweep_id == sweep_id)
            ).all()
        return {(r[0], int(r[1])) for r in rows}

    def training_rates(self, sweep_id: str) -> list[float]:
        """The training images per second of every epoch of the sweep's search trials (and
        repeats): what a refit's time is estimated from."""
        with self.sessions() as s:
            rows = s.scalars(
                select(Epoch.images_per_s)
                .join(Trial, Epoch.trial_id == Trial.id)
                .where(Trial.sweep_id == sweep_id, Trial.refit_of.is_(None))
            ).all()
        return [float(r) for r in rows]

    def trials(self, sweep_id: str) -> list[Trial]:
        with self.sessions() as s:
            return list(s.scalars(select(Trial).where(Trial.sweep_id == sweep_id).order_by(Trial.started_at)))

    def leaderboard(
        self, sweep_id: str | None = None, model: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Trial], int]:
        """Trials by best val_acc, best first (trials with no epoch yet last)."""
        rows, total, _ = self.leaderboard_page(sweep_id, model, limit, offset)
        return rows, total

    def leaderboard_page(
        self,
        sweep_id: str | None = None,
        model: str | None = None,
        limit: int = 50,
        offset: int = 0,
        filters: list | None = None,
        statuses: list[str] | None = None,
        sort: tuple[str, str] = ("val_acc", "max"),
        dataset: str | None = None,
    ) -> tuple[list[Trial], int, dict[str, str]]:
        """The leaderboard's rows, their total and their sweeps' names, in one session (each
        session costs a connection checkout: a third of a cached view's recompute).
        `filters`: filters.ConfigFilter on config parameters; `statuses`: trial statuses.
        Rows are ordered by data set first (models of different data sets are never ranked
        against each other), each row's `dataset` set from its sweep."""
        q = select(Trial)
        if sweep_id:
            q = q.where(Trial.sweep_id == sweep_id)
        if dataset:
            q = q.where(Trial.sweep_id.in_(select(Sweep.id).where(Sweep.dataset == dataset)))
        if model:
            q = q.where(Trial.model == model)
        if statuses:
            q = q.where(Trial.status.in_(statuses))
        for f in filters or []:
            q = q.where(_config_clause(f))
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            column = SORTABLE[sort[0]]
            # A refit ties with its source on val_acc (it has no validation images): it comes first.
            first = column.desc().nulls_last() if sort[1] == "max" else column.asc().nulls_last()
            order = (first, Trial.refit_of.is_(None), Trial.id)
            if not (sweep_id or dataset):
                of_sweep = select(Sweep.dataset).where(Sweep.id == Trial.sweep_id).scalar_subquery()
                order = (of_sweep.asc().nulls_last(), *order)
            rows = list(s.scalars(q.order_by(*order).limit(limit).offset(offset)).all())
            ids = {t.sweep_id for t in rows}
            found = s.execute(select(Sweep.id, Sweep.name, Sweep.dataset).where(Sweep.id.in_(ids))).all() if ids else []
        names = {r[0]: r[1] for r in found}
        datasets = {r[0]: r[2] for r in found}
        for t in rows:
            t.dataset = datasets.get(t.sweep_id)  # not a column: the sweep's, for the row's item
        return rows, int(total or 0), names

    def datasets(self) -> list[tuple[str, int]]:
        """Each data set with its number of sweeps (the leaderboard's groups)."""
        with self.sessions() as s:
            rows = s.execute(
                select(Sweep.dataset, func.count()).where(Sweep.dataset.is_not(None)).group_by(Sweep.dataset)
            ).all()
        return sorted((r[0], int(r[1])) for r in rows)

    def sweep_summary(self, sweep_id: str) -> tuple[dict[str, int], Trial | None, list[tuple]]:
        """Trial counts by status, the best trial, and each trial's (id, status, epochs,
        epoch budget, seconds) for the sweep's progress, in one session."""
        with self.sessions() as s:
            rows = s.execute(
                select(Trial.id, Trial.status, Trial.epochs, Trial.epochs_budget, Trial.seconds).where(
                    Trial.sweep_id == sweep_id
                )
            ).all()
            best = s.scalars(
                select(Trial)
                .where(Trial.sweep_id == sweep_id, Trial.val_acc.is_not(None))
                .order_by(Trial.val_acc.desc(), Trial.refit_of.is_(None), Trial.id)
                .limit(1)
            ).first()
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts, best, [tuple(r) for r in rows]


_BUMP = Sweep.data_version + 1


def _seconds_to(s: Session, trial_id: str, epoch: int) -> float:
    """A trial's epoch seconds up to `epoch` (its rows, this one included)."""
    s.flush()
    total = s.scalar(select(func.sum(Epoch.seconds)).where(Epoch.trial_id == trial_id, Epoch.epoch <= epoch))
    return float(total or 0.0)


def _number(v: Any) -> float | None:
    """A measured value as stored: NaN (no validation images: a refit) is NULL."""
    x = float(v)
    return None if math.isnan(x) else x


COST_FIELDS = ("params", "latency_ms", "latency_ms_batch")  # reported with every epoch
# The leaderboard's orders: each stored metric's column (metrics.STORED) -> the column.
SORTABLE = {column: getattr(Trial, column) for column, _ in STORED.values()}


def _bump(s: Session, sweep_id: str) -> None:
    s.execute(update(Sweep).where(Sweep.id == sweep_id).values(data_version=_BUMP))


def _bump_trial(s: Session, trial_id: str) -> None:
    s.execute(
        update(Sweep)
        .where(Sweep.id == select(Trial.sweep_id).where(Trial.id == trial_id).scalar_subquery())
        .values(data_version=_BUMP)
    )


def _config_clause(f):
    """SQL for one filters.ConfigFilter on the JSON config (SQLite json_extract, PostgreSQL ->>)."""
    from sqlalchemy import and_, or_

    field = Trial.config[f.name]
    if f.values is None:
        number = field.as_float()
        return and_(
            *([number >= f.low] if f.low is not None else []),
            *([number <= f.high] if f.high is not None else []),
            field.is_not(None),
        )
    alternatives = []
    for v in f.values:
        if isinstance(v, bool):
            alternatives.append(field.as_boolean() == v)
        elif isinstance(v, (int, float)):
            alternatives.append(field.as_float() == float(v))
        else:
            alternatives.append(field.as_string() == v)
    return or_(*alternatives)


@lru_cache(maxsize=8)
def get_store(url: str) -> Store:
    """One Store (one connection pool) per URL per process."""
    return Store(url)
