"""A sweep's limits, changed while it runs: `PATCH /sweeps/{id}` and `cifar-sweeps update`.

Three of a spec's fields can change under a running sweep: `num_samples`, `max_concurrent_trials`
and `time_budget_s`. The new values go into the sweep's stored spec (so a resumed sweep keeps
them, and the page's progress and ETA follow them), checked as a submitted spec is (the same
bounds and the service's limits); the driver reads them from the store within seconds
(tuning/live.py). Nothing else of a running sweep changes: its space, searcher and
scheduler are fixed by the trials already run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cifar_sweeps.errors import SpecError
from cifar_sweeps.sweepspec.schema import SweepSpec, parse_spec

LIVE_FIELDS = ("num_samples", "max_concurrent_trials", "time_budget_s")


class Limits(BaseModel):
    """The body of `PATCH /sweeps/{id}`: any of the three, at least one. `time_budget_s`
    null removes the budget; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    num_samples: int | None = Field(None, ge=1)
    max_concurrent_trials: int | None = Field(None, ge=1)
    time_budget_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_at_least(self):
        if not self.model_fields_set:
            raise ValueError(f"give at least one of {', '.join(LIVE_FIELDS)}")
        if "num_samples" in self.model_fields_set and self.num_samples is None:
            raise ValueError("num_samples: give a number (at least 1)")
        if "max_concurrent_trials" in self.model_fields_set and self.max_concurrent_trials is None:
            raise ValueError("max_concurrent_trials: give a number (at least 1)")
        return self

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in LIVE_FIELDS if k in self.model_fields_set}


class Extend(BaseModel):
    """The body of `POST /sweeps/{id}/extend`: how many search trials to add to an ended sweep."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(ge=1, le=1000)


class Continuation(BaseModel):
    """The body of `POST /trials/{id}/continue`: how many epochs more to train a trial."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(ge=1, le=10_000)


def with_limits(stored: dict[str, Any], limits: Limits, settings=None) -> SweepSpec:
    """The stored spec with the new limits, checked as a submitted spec (SpecError naming the
    field). A grid walks its own points: its trial count is not the searcher's to change."""
    spec = parse_spec(stored)
    changes = limits.changes()
    if spec.search.algorithm == "grid" and "num_samples" in changes:
        raise SpecError("num_samples: a grid sweep's trials are its grid's points; it cannot change while it runs")
    live = [k for k in ("num_samples", "max_concurrent_trials") if k in changes]
    if spec.scheduler.type == "pbt" and live:
        raise SpecError(f"{live[0]}: a pbt sweep's population is drawn when it starts; it cannot change while it runs")
    return parse_spec({**spec.model_dump(mode="json"), **changes}, settings)


def live_values(spec: dict[str, Any]) -> tuple[int, int, float | None]:
    """(num_samples, max_concurrent_trials, time_budget_s) of a stored spec, as the driver reads them."""
    field = SweepSpec.model_fields
    return (
        int(spec.get("num_samples", field["num_samples"].default)),
        int(spec.get("max_concurrent_trials", field["max_concurrent_trials"].default)),
        spec.get("time_budget_s"),
    )
