"""What every request works with: the app's state (one Settings, one store, one Jobs), as a
FastAPI dependency. Its own module so that deps.py and presenters.py both use it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cifar_sweeps.cluster.jobs import Jobs
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import Store


class AppState:
    """What every request works with: one Settings, one store, one Jobs (the Ray cluster)."""

    def __init__(self, settings: Settings, store: Store, jobs: Jobs):
        self.settings, self.store, self.jobs = settings, store, jobs


def get_state(request: Request) -> AppState:
    return request.app.state.s


State = Annotated[AppState, Depends(get_state)]
