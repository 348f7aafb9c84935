"""The analysis part's answers as pydantic models: a spec's plan (plan.py) and a sweep's
parameter importance (importance.py). The API serves them as they are (service/schemas.py
names them in its OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cifar_sweeps.analysis.replay import ReplayOut
from cifar_sweeps.cluster.resources import PlanResources  # the cluster's, as a plan counts them


class EpochRange(BaseModel):
    min: float
    expected: float
    max: float
    assumption: str  # what `expected` (and the range) assume


class PlanOut(BaseModel):
    """A spec's cost before it runs (plan.py); every figure names its source."""

    trials: int  # the search's (grid: every point, num_samples times)
    trial_epochs: EpochRange  # the repeats' included
    repeat_trial_epochs: float  # of which the repeats (spec.repeat), at most
    refit_trial_epochs: float = 0.0  # of which the refit (spec.refit), at most: reserved from a budget
    refit_s: float | None = None  # the refit's wall time: its epochs on every training image, alone
    images: EpochRange  # images processed: training and validation
    resources: PlanResources
    concurrent_trials: int  # trials at once: resources_per_trial against the cluster, max_concurrent_trials
    seconds_per_epoch: float | None  # one trial's epoch on this spec's data; None: unknown
    throughput_source: str
    startup: str = ""  # what the wall time counts before the first epoch, and why
    wall_s_best: float | None = None
    wall_s_expected: float | None = None
    wall_s_worst: float | None = None
    peak_mb_per_trial: float | None = None
    memory_source: str = ""
    memory_fits: bool | None = None  # the concurrent trials' peaks within one node's memory
    cuts: list[str]  # where time_budget_s or budget.epochs cuts the sweep
    warnings: list[str]
    model_params: dict[str, int] = {}  # plug-in models' parameter counts, checked at submit (modelcheck.py)
    # The params the service chose (spec `"params": "auto"`, or none given: autospace.py), as spec params.
    auto_space: dict[str, dict[str, Any]] = {}
    # The spec's search replayed on a tabulated task (`plan --replay TASK`), when asked.
    replay: ReplayOut | None = None


class PlanActual(BaseModel):
    """A finished sweep: the plan's estimate against what it took."""

    estimated_s: float | None  # the plan's expected wall time at submit
    actual_s: float  # from its driver's start to its end
    trial_epochs_planned: EpochRange
    trial_epochs_actual: int


class ParamImportance(BaseModel):
    name: str
    importance: float  # fANOVA's share of the metric's variance; the shares add up to 1
    kind: str  # "float", "int" or "choice"
    log: bool = False
    best_low: float | None = None  # numbers: the range of the top trials
    best_high: float | None = None
    best_values: list[Any] | None = None  # choices: the values of the top trials, most frequent first


class Importance(BaseModel):
    sweep_id: str
    metric: str
    direction: str
    trials_used: int
    top_trials: int
    # Finished trials with a score; above analysis.MAX_TRIALS a seeded random sample of them
    # is used (fANOVA's cost grows faster than the trials).
    trials_finished: int = 0
    sampled: bool = False
    # Trials whose config lies outside the spec's space (a spec edited since, a value at a
    # bound, an imported trial): skipped, as warm start skips them.
    trials_outside_space: int = 0
    evaluator: str = "fANOVA (Optuna)"
    params: list[ParamImportance]
