"""Alembic's environment: migrations run on the connection the store hands in (see
migrations/__init__.py), never on a URL of their own."""

from alembic import context

from cifar_sweeps.store.tables import Base

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it, which Alembic's batch mode does.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
