"""A queued sweep's driver columns name the driver it is queued for.

From this revision a sweep queued for a driver of its own (a terminal's `cifar-sweeps run`,
`refit`, `repeat`, `extend`, `continue`) keeps that driver's host and pid while it waits,
and the service submits only queued sweeps with none (Store.next_queued). Before it, a sweep
queued again kept the driver of its earlier run in those columns, and every queued sweep
was the service's to submit: those columns are cleared, so each is submitted as before.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from cifar_sweeps.store.states import SweepStatus

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sweeps = sa.table("sweeps", sa.column("status", sa.String), sa.column("driver_host"), sa.column("driver_pid"))
    op.execute(
        sweeps.update().where(sweeps.c.status == SweepStatus.QUEUED.value).values(driver_host=None, driver_pid=None)
    )


def downgrade() -> None:
    pass  # the old code ignores a queued sweep's driver columns
