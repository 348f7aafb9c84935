"""The one registry of metrics: each metric's name (as specs, queries and flags write it),
the trial column it is stored in, its direction, and how a stored trial is scored by it.

"val_acc" means three things elsewhere, so each has a name here:
- `val_acc`: the validation accuracy a trial reports each epoch (what Tune's searchers and
  schedulers see); a stored trial's value is its last epoch's;
- `best_val_acc`: the best epoch's validation accuracy so far (the report's objective),
  which is what the store keeps in the trials' `val_acc` column;
- that column itself (`Metric.column`), which the API names `best_val_acc`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["max", "min"]


@dataclass(frozen=True)
class Metric:
    name: str
    column: str  # the trials table's column that holds it
    mode: Mode
    # How a stored trial is scored: "epoch", its last epoch's value (the epochs table);
    # "best", the best epoch's (its column); "cost", measured once (its column).
    scored_as: Literal["epoch", "best", "cost"]
    searchable: bool = False  # a spec's `metric`: what the search and the scheduler optimize
    objective: bool = False  # one of a multi-objective sweep's `objectives`
    stored: bool = True  # a leaderboard order and a Pareto axis (its column, as stored)
    log_axis: bool = False  # drawn on a log axis (the page's Pareto plot): sizes and times span decades


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("val_acc", "val_acc", "max", "epoch", searchable=True, objective=True, stored=False),
        Metric("best_val_acc", "val_acc", "max", "best", searchable=True, objective=True),
        Metric("val_loss", "val_loss", "min", "epoch", searchable=True, objective=True),
        Metric("test_acc", "test_acc", "max", "best"),
        Metric("params", "params", "min", "cost", objective=True, log_axis=True),
        # inference ms per image, at batch 1 and at a large batch
        Metric("latency_ms", "latency_ms", "min", "cost", objective=True, log_axis=True),
        Metric("latency_ms_batch", "latency_ms_batch", "min", "cost", objective=True, log_axis=True),
        Metric("train_s", "seconds", "min", "cost", objective=True, log_axis=True),  # training seconds
        # epoch seconds up to the best epoch
        Metric("seconds_to_best", "seconds_to_best", "min", "best", log_axis=True),
    )
}

# A spec's `metric` and each one's direction; a multi-objective sweep's objectives.
METRIC_MODES: dict[str, Mode] = {k: m.mode for k, m in METRICS.items() if m.searchable}
OBJECTIVE_MODES: dict[str, Mode] = {k: m.mode for k, m in METRICS.items() if m.objective}
# The stored metrics: a leaderboard order or a Pareto axis -> (its column, its direction).
STORED: dict[str, tuple[str, Mode]] = {k: (m.column, m.mode) for k, m in METRICS.items() if m.stored}

# The leaderboard's order when none is asked for, and a front's axes when the sweep names none.
DEFAULT_ORDER = "best_val_acc"
DEFAULT_FRONT = ("params", DEFAULT_ORDER)

# The names each place takes (one list: the schema's Literal, the API's query, the CLI's choices).
SearchMetric = Literal[tuple(METRIC_MODES)]  # type: ignore[valid-type]
ObjectiveMetric = Literal[tuple(OBJECTIVE_MODES)]  # type: ignore[valid-type]
StoredMetric = Literal[tuple(STORED)]  # type: ignore[valid-type]


def stored_value(trial: Any, metric: str) -> float | None:
    """A stored trial's value of `metric`: its column (val_acc and best_val_acc: the best
    epoch's val_acc; val_loss: that epoch's). What rankings and importance score by."""
    return getattr(trial, METRICS[metric].column, None)


def stored_name(name: str) -> str:
    """The stored metric that stands for `name` in the store (val_acc: best_val_acc)."""
    m = METRICS[name]
    return name if m.stored else next(k for k, s in METRICS.items() if s.stored and s.column == m.column)
