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
        Scheduler("asha", "stops a trial at a rung when it is not in the top 1/reduction_factor there"),
        Scheduler(
            "fifo",
            "every trial trains its epochs",
            stops_trials=False,
            whole_run="fifo: every trial trains its epochs",
            several_objectives=True,
        ),
        Scheduler(
            "hyperband",
            "BOHB's (search.algorithm bohb only): brackets of successive halving whose rungs follow "
            "from max epochs and reduction_factor",
            searcher="bohb",
        ),
        Scheduler(
            "pbt",
            "population-based training (tuning/pbt.py): every perturbation_interval epochs, a trial in "
            "the bottom quantile_fraction goes on from the weights of one in the top, with its `mutate` "
            "params changed (x0.8 or x1.2, or drawn afresh from the param), in place",
            stops_trials=False,
            whole_run="pbt: every trial trains its epochs, some from others' weights",
            keeps_every_checkpoint=True,
        ),
    )
}
SchedulerName = Literal[tuple(SCHEDULERS)]  # type: ignore[valid-type]  # the spec's field, from the entries
DEFAULT_SCHEDULER = "asha"


def describe() -> str:
    """Each scheduler and what it does, in one line (the spec's field description)."""
    return "; ".join(f"{s.name}: {s.what}" for s in SCHEDULERS.values())


def paired_with(searcher: str) -> str | None:
    """The scheduler a searcher runs with only (BOHB: hyperband), or None."""
    return next((s.name for s in SCHEDULERS.values() if s.searcher == searcher), None)
