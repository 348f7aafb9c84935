"""The trial schedulers a spec may name, one entry each with what it does. The spec's
`scheduler.type` values, its pairing and objectives checks, the plan's count of epochs,
the epochs a trial tests at, its checkpoints, and tuning/schedulers.py's factories read
these entries: a new scheduler is one entry here and one factory there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Scheduler:
    name: str
    what: str  # one line, for the reference
    stops_trials: bool = True  # cuts trials at rungs; False: every trial trains its epochs
    whole_run: str | None = None  # what the plan assumes of a scheduler that stops none
    several_objectives: bool = False  # ranks nothing by one metric, so `objectives` may rank
    searcher: str | None = None  # the one searcher it runs with, and that runs with it only
    keeps_every_checkpoint: bool = False  # a trial may go on from any earlier checkpoint of another


SCHEDULERS: dict[str, Scheduler] = {
    s.name: s
    for s in (
        Scheduler("asha", "asynchronous successive halving: the top 1/reduction_factor of each rung go on"),
        Scheduler(
            "fifo",
            "every trial trains its epochs",
            stops_trials=False,
            whole_run="fifo: every trial trains its epochs",
            several_objectives=True,
        ),
        Scheduler("hyperband", "BOHB's brackets of successive halving", searcher="bohb"),
        Scheduler(
            "pbt",
            "population-based training: the bottom goes on from the top's weights, its params changed",
            stops_trials=False,
            whole_run="pbt: every trial trains its epochs, some from others' weights",
            keeps_every_checkpoint=True,
        ),
    )
}
SchedulerName = Literal[tuple(SCHEDULERS)]  # type: ignore[valid-type]  # the spec's field, from the entries
DEFAULT_SCHEDULER = "asha"


def paired_with(searcher: str) -> str | None:
    """The scheduler a searcher runs with only (BOHB: hyperband), or None."""
    return next((s.name for s in SCHEDULERS.values() if s.searcher == searcher), None)
