"""Constraints on a trial's stored cost metrics (`"constraints": ["params <= 2e6"]`): a bound a
model must keep to count, rather than a second objective to trade against. Optuna's samplers
take them (`constraints_func`: infeasible trials steer the search away); the refit chooses
among feasible trials only; the leaderboard marks each trial of a constrained sweep.

Pure: parsing, and each constraint's violation (<= 0 is feasible, Optuna's convention)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# The trials' stored cost metrics a bound may name (store.Trial columns, reported by every trial).
CONSTRAINT_METRICS = ("params", "latency_ms", "latency_ms_batch", "seconds", "seconds_to_best")
MAX_CONSTRAINTS = 8
_FORM = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # "<=", "<", ">=", ">"
    bound: float

    def violation(self, value: float | None) -> float:
        """How far `value` is past the bound (<= 0: feasible); a value not measured yet is
        infeasible (1.0): a trial that never reported its cost can't be shown to keep it."""
        if value is None:
            return 1.0
        return value - self.bound if self.op in ("<=", "<") else self.bound - value

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return {"<=": value <= self.bound, "<": value < self.bound, ">=": value >= self.bound, ">": value > self.bound}[
            self.op
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_constraint(text: str, where: str) -> Constraint:
    m = _FORM.match(text)
    if m is None:
        raise ValueError(f"{where}: {text[:64]!r} is no constraint; write METRIC OP NUMBER, e.g. 'params <= 2e6'")
    metric, op, bound = m[1], m[2], float(m[3])
    if metric not in CONSTRAINT_METRICS:
        raise ValueError(f"{where}: {metric!r} is no stored metric a bound can name ({', '.join(CONSTRAINT_METRICS)})")
    return Constraint(metric, op, bound)


def parse_all(texts: list[str]) -> list[Constraint]:
    return [parse_constraint(t, f"constraints[{i}]") for i, t in enumerate(texts)]


def feasible(constraints: list[Constraint], values: dict[str, Any] | Any) -> bool:
    """Whether a trial (a dict of its metrics, or a store row with them as attributes) keeps
    every constraint."""
    get = values.get if isinstance(values, dict) else lambda k: getattr(values, k, None)
    return all(c.holds(get(c.metric)) for c in constraints)
