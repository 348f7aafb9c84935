"""The API's routers, one per resource; api.create_app wires them."""

from cifar_sweeps.service.routes import (
    health,
    leaderboard,
    models,
    notifications,
    page,
    search_spaces,
    sweeps,
    trials,
)

ROUTERS = [
    sweeps.router,
    trials.router,
    leaderboard.router,
    search_spaces.router,
    models.router,
    notifications.router,
    health.router,
    page.router,
]
