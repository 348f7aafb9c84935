"""The use cases: what the system does, one function each, under the front ends (the HTTP
routes, the CLI, the Python API), which parse their input, call one and present its answer."""

from cifar_sweeps.usecases.leaderboard import (
    BoardQuery,
    GroupedLeaderboard,
    GroupItem,
    Leaderboard,
    LeaderboardItem,
    read_board,
    read_groups,
)

__all__ = [
    "BoardQuery",
    "GroupItem",
    "GroupedLeaderboard",
    "Leaderboard",
    "LeaderboardItem",
    "read_board",
    "read_groups",
]
