"""The store's schema migrations (Alembic revisions in versions/), applied in place by every
process that opens a store: the API, the sweep driver and the CLI alike.

Two processes that start on the same old store at once must not both migrate it: the
upgrade runs under a lock that the database or the file system holds for us (PostgreSQL's
advisory lock, or an flock beside the SQLite file), and re-reads the revision once it holds
the lock. A store already at the head revision takes no lock at all.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

HERE = Path(__file__).resolve().parent
# Any constant that names "cifar-sweeps schema upgrade" among a database's advisory locks.
PG_LOCK_KEY = 0x0C1FA5_5EE9


def _config(connection: Connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(HERE)).get_current_head()


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    db = engine.url.database
    if not db or db == ":memory:":
        yield
        return
    with open(f"{db}.migrate-lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


def upgrade(engine: Engine) -> str:
    """Bring the store's schema to the head revision; returns the revision it is at."""
    from alembic import command

    head = head_revision()
    with engine.connect() as c:
        if current_revision(c) == head:
            return head
    lock = _sqlite_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    with lock, engine.connect() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_KEY})
            c.commit()
        try:
            if current_revision(c) != head:  # another process may have done it meanwhile
                command.upgrade(_config(c), "head")
                c.commit()
        finally:
            if engine.dialect.name == "postgresql":
                c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                c.commit()
    return head
