"""The sweep spec: one pydantic schema for search_spaces/*.json and for POST /sweeps.

Searched parameters are spaces.py's six types (HyperOpt's vocabulary: uniform, loguniform,
quniform, qloguniform, randint, choice); spaces.py also maps them to each library. Every
name and every range is checked against the training config before anything runs, so a
bad spec fails in milliseconds with the field it names.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from contextvars import ContextVar
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator, model_validator

from cifar_sweeps.errors import SpecError
from cifar_sweeps.sweepspec import autospace, registry, schedulers, searchers, spaces
from cifar_sweeps.sweepspec.config import (
    MODEL_ARG,
    OLD_NAMES,
    PBT_MUTABLE,
    PRETRAINABLE,
    SCALABLE,
    TrainConfig,
    inapplicable,
)
from cifar_sweeps.sweepspec.constraints import MAX_CONSTRAINTS, parse_all
from cifar_sweeps.sweepspec.metrics import METRIC_MODES, OBJECTIVE_MODES, ObjectiveMetric, SearchMetric
from cifar_sweeps.sweepspec.registry import ARG_RE, FIXED_SIZE_32
from cifar_sweeps.sweepspec.schedulers import DEFAULT_SCHEDULER, SCHEDULERS, SchedulerName
from cifar_sweeps.sweepspec.searchers import DEFAULT_SEARCHER, SEARCHERS, SearcherName
from cifar_sweeps.sweepspec.spaces import Param, Strict, candidates, chooses_objects, flatten_config, is_choice

# Keys of the trial config that the sweep runner sets itself, not the user. (`seed` is the
# user's: a choice of seeds repeats one config.)
RESERVED = {"device", "threads"}
# How many random draws of a hyperopt/random space the submit-time check builds.
CHECK_DRAWS = 32
# At most this many grid points / choice branches are expanded by that check.
CHECK_MAX_POINTS = 2048
# A choice among objects whose branches combine to more settings than this is refused:
# counted (a product of lengths, microseconds) before anything is expanded.
MAX_BRANCH_SETTINGS = 10_000
# JSON nesting of a spec (objects and lists): the deepest preset is 5; deeper would only
# make validation recurse without bound.
MAX_DEPTH = 12
# Test-only fault injection (trainable.py): fail_at_epoch makes a trial raise once after that
# epoch, `fault` says how. Known keys only while TEST_HOOKS is on (Settings.test_hooks, which
# parse_spec and the API set for the validation they run); otherwise unknown like any other.
ADAPTER_FIELDS = {"fail_at_epoch", "fault"}
TEST_HOOKS: ContextVar[bool] = ContextVar("cifar_sweeps_test_hooks", default=False)
CONFIG_FIELDS = (set(TrainConfig.model_fields) | set(OLD_NAMES)) - RESERVED
MODEL_ARGS = TypeAdapter(TrainConfig.model_fields["model_args"].annotation)  # a plug-in's arguments' values


def train_fields() -> set[str]:
    """The keys a trial config may have (with the test hooks when they are on)."""
    return CONFIG_FIELDS | ADAPTER_FIELDS if TEST_HOOKS.get() else CONFIG_FIELDS


def is_train_key(key: str) -> bool:
    """A trial config key: a field, or one plug-in model argument (`model_args.NAME`)."""
    return key in train_fields() or (key.startswith(MODEL_ARG) and bool(ARG_RE.match(key.removeprefix(MODEL_ARG))))


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class WarmStart(Strict):
    # Earlier sweeps whose finished trials the searcher starts from, as already evaluated.
    sweeps: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,96}$")]] = Field(min_length=1, max_length=20)


class OptunaOptions(Strict):
    # Optuna's TPESampler: multivariate models the params jointly (the report's lr and batch
    # size interact); constant_liar makes concurrent trials spread out instead of piling up
    # on the same region while the first of them are still running. With several
    # objectives, `sampler` nsga2 takes NSGA-II instead of (multi-objective) TPE.
    multivariate: bool = True
    constant_liar: bool = True
    sampler: Literal["tpe", "nsga2"] = "tpe"


class Objective(Strict):
    metric: ObjectiveMetric
    mode: Literal["max", "min"]


class SearchConfig(Strict):
    algorithm: SearcherName = Field(DEFAULT_SEARCHER, description=searchers.describe())
    seed: int | None = 0
    n_initial_points: int = Field(5, ge=1)  # random trials before TPE takes over
    points_to_evaluate: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    warm_start: WarmStart | None = None  # hyperopt and optuna; see warm.py
    optuna: OptunaOptions | None = None  # only with algorithm optuna


class SchedulerConfig(Strict):
    type: SchedulerName = Field(DEFAULT_SCHEDULER, description=schedulers.describe())
    grace_period: int = Field(1, ge=1, le=10_000)  # epochs every trial gets before it can be stopped (asha)
    # 1.1 at the least: the rungs grow by this factor, and a factor near 1 makes thousands of
    # rungs (1.00000001 made 2.3e8 of them) for no scheduler that means anything.
    reduction_factor: float = Field(3.0, ge=1.1, le=100.0)
    perturbation_interval: int = Field(2, ge=1, le=10_000)  # epochs between a trial's exploit steps (pbt)
    quantile_fraction: float = Field(0.25, gt=0.0, le=0.5)  # the bottom that copies the top (pbt)
    resample_probability: float = Field(0.25, ge=0.0, le=1.0)  # a changed value drawn afresh, else scaled (pbt)
    # pbt: true waits at each perturbation point for the whole population and ranks it there
    # (like with like, and the same ranking whatever the trials' speeds); false ranks a trial
    # as it arrives among the scores the others last reported (no slot idles).
    synch: bool = False
    # The params pbt changes in training (top-level params of the space, among PBT_MUTABLE);
    # None: each of those the space searches.
    mutate: list[str] | None = Field(None, max_length=len(PBT_MUTABLE))


class Resources(Strict):
    cpu: float = Field(1.0, gt=0, le=256)
    gpu: float = Field(0.0, ge=0, le=64)  # fractions share one GPU between trials


class Budget(Strict):
    # The sweep's compute: trial-epochs in total, over all its trials. New trials start until
    # it is spent; trials running then stop at their next epoch.
    epochs: int = Field(ge=1, le=10_000_000)


class Repeat(Strict):
    # After the search: each of the `top` best configurations is trained again until it has
    # `seeds` runs (new seeds: init and data order; the split stays), to its full epochs with
    # no early stopping. The leaderboard's grouped view (ranking.py) ranks them by mean.
    top: int = Field(ge=1, le=20)
    seeds: int = Field(ge=2, le=10)


class Continue(Strict):
    # A trial of this sweep trained on from its last checkpoint (`cifar-sweeps continue`):
    # `epochs` more, as a new row linked to it, after the search and the repeats. The service
    # writes these; tuning/continued.py says what a learning-rate schedule does then.
    trial: str = Field(min_length=1, max_length=96)  # the store id of the trial to go on from
    epochs: int = Field(ge=1, le=10_000)


class Plateau(Strict):
    """Stop a trial whose metric has stopped moving (Ray Tune's TrialPlateauStopper): after
    `grace_period` epochs, when the standard deviation of its last `num_results` results of
    `metric` is under `std`."""

    metric: Literal["val_acc", "val_loss", "train_loss"] = "val_acc"
    std: float = Field(0.002, gt=0, le=1)  # in the metric's units: 0.002 is 0.2 points of accuracy
    num_results: int = Field(4, ge=2, le=1000)  # epochs the spread is taken over
    grace_period: int = Field(4, ge=1, le=10_000)  # epochs before a trial can be stopped so


class StopConfig(Strict):
    plateau: Plateau | None = None


class DataConfig(Strict):
    # Images are resized to image_size x image_size (CIFAR-10's own 32 keeps them as they are).
    image_size: int = Field(32, ge=8, le=512)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    # Carved from the training images (stratified) when the source has no test split.
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = 0
    train_subset: int | None = Field(None, ge=10)  # use only the first N training images


class SweepSpec(Strict):
    @model_validator(mode="before")
    @classmethod
    def _shallow(cls, raw: Any) -> Any:
        where = too_deep(raw, MAX_DEPTH)
        if where is not None:
            raise ValueError(f"{where or 'the spec'}: nested deeper than {MAX_DEPTH} levels of objects and lists")
        if isinstance(raw, dict) and autospace.wants_auto(raw):
            return autospace.expand(raw)  # the service's space, params given winning (autospace.py)
        return raw

    name: str = "sweep"  # shown on the leaderboard and the page; need not be unique
    description: str = Field("", max_length=2000)  # what the sweep is for, shown with it
    metric: SearchMetric = "val_acc"  # metrics.py: the metrics and each one's direction
    mode: Literal["max", "min"] = "max"  # whether `metric` is better higher or lower
    num_samples: int = Field(10, ge=1)  # configurations tried (grid: each point this many times)
    max_concurrent_trials: int = Field(4, ge=1)  # trials at once, at most (the cluster may fit fewer)
    search: SearchConfig = Field(default_factory=SearchConfig)  # the searcher: below
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)  # early stopping: below
    resources_per_trial: Resources = Field(default_factory=Resources)  # CPUs (torch threads) and GPUs per trial
    data: DataConfig = Field(default_factory=DataConfig)  # the splits and the image size: below
    fixed: dict[str, Any] = Field(default_factory=dict)  # trial fields every trial shares ("A trial" below)
    params: dict[str, Param] = Field(default_factory=dict)  # trial fields searched: uniform, loguniform, choice...
    # The params the service chose (`"params": "auto"`, or none given): autospace.py's rules.
    auto_params: list[str] = Field(default_factory=list, max_length=64)
    keep_checkpoints: int = Field(2, ge=1, le=100)  # best k by val_acc per trial
    max_failures: int = Field(2, ge=0, le=100)  # retries of a failed trial, from its checkpoint
    checkpoint_every: int = Field(1, ge=1)  # epochs; a new best and the last epoch always are
    wandb: bool = False  # log every trial to W&B (offline without a key)
    time_budget_s: float | None = Field(None, gt=0)  # stop starting/running trials after this long
    budget: Budget | None = None  # total trial-epochs; num_samples then defaults to budget.epochs
    repeat: Repeat | None = None  # repeats of the best configurations over seeds, after the search
    continues: list[Continue] = Field(default_factory=list, max_length=100)  # trials trained on, in order
    stop: StopConfig | None = None  # stop trials early on their own curves too (a plateau), with any scheduler
    # The operator's webhooks told when this sweep ends, by name (settings `webhooks`); None: all of them.
    notify: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=20)
    # After the search (and the repeats): the best configuration trained again on the training
    # and validation images and tested once, the sweep's model (tuning/refit.py).
    refit: bool = False
    # Under time_budget_s, the share of the budget kept for the refit, which trains as many
    # epochs as fit in it (at least its source's): the search explores short trials, the
    # model trains long. None: the refit trains its source's epochs (refit.py).
    refit_share: float | None = Field(None, gt=0, lt=1)
    # Two or more objectives: a multi-objective search (Optuna's TPE or NSGA-II), fifo only;
    # `metric`/`mode` stay the primary score (checkpoints, repeats, the leaderboard's rank).
    objectives: list[Objective] | None = Field(None, max_length=4)
    # Bounds on the trials' stored cost metrics ("params <= 2e6"): Optuna steers away from
    # trials past them, the refit picks among the feasible ones (constraints.py).
    constraints: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=MAX_CONSTRAINTS)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("name must be 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
        return v

    @model_validator(mode="after")
    def _open_num_samples(self):
        # Under a budget, num_samples left out means "as many as the budget buys": each
        # trial trains at least one epoch, so budget.epochs trials is never the bound.
        if self.budget is not None and "num_samples" not in self.model_fields_set:
            self.num_samples = self.budget.epochs
        return self

    @model_validator(mode="after")
    def _bohb_scheduler(self):
        # BOHB comes with its own scheduler: a bohb spec that names none gets it.
        paired = schedulers.paired_with(self.search.algorithm)
        if paired and "type" not in self.scheduler.model_fields_set:
            self.scheduler.type = paired
        return self

    @model_validator(mode="after")
    def _pbt_search(self):
        # PBT draws its population at random and changes it in training: a pbt spec that
        # names no searcher gets random draws.
        if self.scheduler.type == "pbt" and "algorithm" not in self.search.model_fields_set:
            self.search.algorithm = "random"
        return self

    @model_validator(mode="after")
    def _consistent(self):
        if METRIC_MODES[self.metric] != self.mode:
            modes = ", ".join(f"{k}: {v}" for k, v in METRIC_MODES.items())
            raise ValueError(f"mode {self.mode!r} does not fit metric {self.metric!r} ({modes})")
        _check_names(self)
        _check_values(self)
        _check_points(self)
        _check_warm_start(self)
        _check_optuna(self)
        _check_bohb(self)
        _check_pbt(self)
        _check_repeat(self)
        _check_refit_share(self)
        _check_objectives(self)
        _check_constraints(self)
        if self.search.algorithm == "grid":
            for key, p in self.params.items():
                if not is_choice(p):
                    raise ValueError(f"params.{key}: a grid search takes only choice params, got {p.type}")
        elif not self.params:
            raise ValueError(
                f"params: empty, so a {self.search.algorithm} search has nothing to search and would train "
                "one config num_samples times; add a searched param, name a model (fixed.model) and give "
                '"params": "auto" for a space the service chooses, use `cifar-sweeps train` for a single '
                'run, or search a choice of seeds ("seed": {"type": "choice", "values": [0, 1, 2]}) for repeats'
            )
        check_expanded(self)
        return self

    def total_trials(self) -> int:
        if self.search.algorithm != "grid":
            return self.num_samples
        return self.num_samples * math.prod(len(p.values) for p in self.params.values())

    # -------------------------------------------------------- derived facts

    def repeat_epochs(self) -> int:
        """The trial-epochs the repeats can take at most (every repeat at the max epochs):
        what a budgeted sweep reserves for them, so its search stops that much earlier."""
        return 0 if self.repeat is None else self.repeat.top * (self.repeat.seeds - 1) * self.max_epochs()

    def refit_epochs(self) -> int:
        """The trial-epochs the refit can take at most: the max epochs, each over the training
        and validation images (1 / (1 - val_fraction) of a search trial's epoch)."""
        return math.ceil(self.max_epochs() / (1 - self.data.val_fraction) - 1e-9) if self.refit else 0

    def search_budget(self) -> int | None:
        """The trial-epochs the search may spend: the budget less the repeats' and the refit's reserve."""
        return None if self.budget is None else self.budget.epochs - self.repeat_epochs() - self.refit_epochs()

    def max_epochs(self) -> int:
        """The longest a trial can train: ASHA's max_t, the refit's reserve, and the limit
        checked on submit; from every place a spec can give epochs (fixed, params, a choice's
        objects, points to evaluate)."""
        given = [x for _, x in epoch_settings(self)]
        return int(max(_values_of(*given))) if given else TrainConfig().epochs


def epoch_settings(spec: SweepSpec) -> list[tuple[str, Any]]:
    """(where, value or param) of every epochs the spec gives, wherever it is given."""
    out = [("fixed.epochs", spec.fixed.get("epochs")), ("params.epochs", spec.params.get("epochs"))]
    out += [(f"{where}.epochs", sub.get("epochs")) for where, sub, _ in _sub_spaces(spec)]
    out += [
        (f"search.points_to_evaluate[{i}].epochs", p.get("epochs"))
        for i, p in enumerate(spec.search.points_to_evaluate)
    ]
    return [(where, x) for where, x in out if x is not None]


def too_deep(raw: Any, limit: int) -> str | None:
    """The path of the first value nested deeper than `limit` in a JSON value, or None;
    iterative, so a hostile depth can't exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while stack:
        v, path, depth = stack.pop()
        if not isinstance(v, (dict, list)):
            continue
        if depth >= limit:
            return path
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for k, sub in items:
            step = (f"{path}.{k}" if path else k) if isinstance(k, str) else f"{path}[{k}]"
            stack.append((sub, step, depth + 1))
    return None


def _sub_spaces(spec: SweepSpec):
    """(where, object, the choice's own name) for each object value of a choice param."""
    for name, p in spec.params.items():
        if is_choice(p):
            for i, v in enumerate(p.values):
                if isinstance(v, dict):
                    yield f"params.{name}.values[{i}]", v, name


def _check_names(spec: SweepSpec) -> None:
    _check_old_names(spec)
    for key in spec.fixed:
        if key not in train_fields():
            raise ValueError(f"fixed.{key}: unknown parameter; known: {', '.join(sorted(train_fields()))}")
    for key, p in spec.params.items():
        if not NAME_RE.match(key):
            raise ValueError(f"params.{key[:64]!r}: a parameter name is 1-64 letters, digits, '_', '.', '-'")
        sub = chooses_objects(p)
        if not sub and not is_train_key(key):
            raise ValueError(
                f"params.{key}: unknown parameter; known: {', '.join(sorted(train_fields()))}, and model_args.NAME "
                "for a plug-in model's own arguments"
            )
        if key.startswith(MODEL_ARG) and key.removeprefix(MODEL_ARG) in (spec.fixed.get("model_args") or {}):
            raise ValueError(f"params.{key}: also set in fixed.model_args; keep one")
        if sub and not is_train_key(key):
            # A plain value here would become a config key no trial knows.
            plain = next((i for i, v in enumerate(p.values) if not isinstance(v, dict)), None)
            if plain is not None:
                raise ValueError(
                    f"params.{key}.values[{plain}]: {key} is no parameter, so each value of this "
                    "choice must be an object of parameters"
                )
        if key in spec.fixed:
            raise ValueError(f"params.{key}: both fixed and searched; keep one")
        if sub:
            _check_branch_count(p, f"params.{key}")
    for where, sub, owner in _sub_spaces(spec):
        for key, v in sub.items():
            if not is_train_key(key):
                raise ValueError(f"{where}.{key}: unknown parameter")
            # An object may set its own choice's field: {"model": "resnet50", "pretrained": true}
            # as one value of params.model.
            if key != owner and (key in spec.fixed or key in spec.params):
                raise ValueError(f"{where}.{key}: also set in fixed or params; keep one")
            if chooses_objects(v, (dict, list)):
                raise ValueError(f"{where}.{key}: a choice inside a choice's object takes plain values only")


def _check_old_names(spec: SweepSpec) -> None:
    given = {**{k: "fixed" for k in spec.fixed}, **{k: "params" for k in spec.params}}
    for old, new in OLD_NAMES.items():
        if old in given and new in given:
            raise ValueError(
                f"{given[old]}.{old}: the old name of {new}, which is set too ({given[new]}.{new}); keep {new}"
            )


OLD_NAME_NOTES = {"scheduler": " (the learning-rate schedule; the spec's top-level `scheduler` is the trial scheduler)"}


def old_name_warnings(spec: SweepSpec) -> list[str]:
    """A line for each trial parameter given by its old name: it still works, and says so."""
    out = []
    places = [("fixed", spec.fixed), ("params", spec.params), *((w, obj) for w, obj, _ in _sub_spaces(spec))]
    for where, keys in places:
        for old, new in OLD_NAMES.items():
            if old in keys:
                note = OLD_NAME_NOTES.get(old, "")
                out.append(
                    f"{where}.{old} is the old name of {where}.{new}{note}: it still works; {new} is its name now"
                )
    return out


def settings_count(p: Any) -> int:
    """How many settings `_settings_of` expands a param to, without expanding it."""
    if not is_choice(p):
        return len(candidates(p))
    return sum(
        math.prod(settings_count(sv) if isinstance(sv, BaseModel) else 1 for sv in v.values())
        if isinstance(v, dict)
        else 1
        for v in p.values
    )


def _check_branch_count(p: Any, where: str) -> None:
    n = settings_count(p)
    if n > MAX_BRANCH_SETTINGS:
        raise ValueError(
            f"{where}: its objects' choices combine to {n:,} settings, over the limit of "
            f"{MAX_BRANCH_SETTINGS:,}; split it into fewer or smaller choices"
        )


def _values_of(*items: Any) -> list[float]:
    out: list[float] = []
    for it in items:
        if it is None:
            continue
        out += [float(v) for v in candidates(it) if isinstance(v, (int, float))]
    return out or [0]


def _check_field(field: str, value: Any, where: str) -> None:
    if field == "fault":
        if value not in ("raise", "oom"):
            raise ValueError(f"{where}: fault must be 'raise' or 'oom', got {value!r}")
        return
    if field in ADAPTER_FIELDS:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{where}: {field} must be an int >= 1, got {value!r}")
        return
    try:
        if field == "model_args" or field.startswith(MODEL_ARG):  # its model is checked with the whole config
            MODEL_ARGS.validate_python(value if field == "model_args" else {field.removeprefix(MODEL_ARG): value})
        else:
            # strict: "100000" is not 100000 (the limits read numbers) and 1 is not true.
            TrainConfig.model_validate({field: value}, strict=True, context={"field_alone": True})
    except ValidationError as e:
        msg = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())
        raise ValueError(f"{where}: {value!r} is not a valid {field}: {msg}") from None


def _check_values(spec: SweepSpec) -> None:
    for key, v in spec.fixed.items():
        _check_field(key, v, f"fixed.{key}")
    for key, p in spec.params.items():
        if is_train_key(key):
            for v in candidates(p):
                _check_field(key, v, f"params.{key}")
    for where, sub, _ in _sub_spaces(spec):
        for key, v in sub.items():
            for c in candidates(v):
                _check_field(key, c, f"{where}.{key}")


def _check_optuna(spec: SweepSpec) -> None:
    if spec.search.optuna is not None and spec.search.algorithm != "optuna":
        raise ValueError(
            f"search.optuna: options of the optuna algorithm, but search.algorithm is {spec.search.algorithm}"
        )
    if spec.search.algorithm == "optuna":
        _check_plain_space(spec)


def _check_plain_space(spec: SweepSpec) -> None:
    """A searcher of flat spaces (Optuna, BOHB: `flat_space` in searchers.py): no choices
    among objects, and a log scale that steps by 1 only."""
    algorithm = spec.search.algorithm
    if not SEARCHERS[algorithm].flat_space:
        return
    name = SEARCHERS[algorithm].title
    key = _object_choice(spec)
    if key:
        raise ValueError(
            f"params.{key}: {algorithm} takes choices of plain values (numbers, strings, booleans); "
            "use hyperopt for choices among objects"
        )
    for key, p in spec.params.items():
        if not spaces.flat_equivalent(p):
            raise ValueError(
                f"params.{key}: qloguniform with q={p.q:g} has no {name} equivalent (a log scale "
                "steps by 1 only); use loguniform, quniform, or hyperopt"
            )


def _check_bohb(spec: SweepSpec) -> None:
    bohb, hyperband = spec.search.algorithm == "bohb", spec.scheduler.type == "hyperband"
    if hyperband and not bohb:
        raise ValueError(
            f"scheduler.type: hyperband is BOHB's scheduler (it feeds BOHB's model each rung's "
            f"results); use it with search.algorithm bohb, not {spec.search.algorithm}"
        )
    if bohb and not hyperband:
        raise ValueError(
            f"scheduler.type: search.algorithm bohb runs with its own scheduler, hyperband "
            f"(leave scheduler.type out or set it to hyperband), not {spec.scheduler.type}"
        )
    if not bohb:
        return
    if spec.scheduler.grace_period != SchedulerConfig.model_fields["grace_period"].default:
        raise ValueError(
            "scheduler.grace_period: HyperBand sets each bracket's first rung from the max epochs "
            "and reduction_factor; leave grace_period out with hyperband"
        )
    _check_plain_space(spec)


PBT_ONLY = ("perturbation_interval", "quantile_fraction", "resample_probability", "synch", "mutate")


def _check_pbt(spec: SweepSpec) -> None:
    sched = spec.scheduler
    if sched.type != "pbt":
        # a stored spec carries every default: only a value that differs from one was asked for
        given = [k for k in PBT_ONLY if getattr(sched, k) != SchedulerConfig.model_fields[k].default]
        if given:
            raise ValueError(f"scheduler.{given[0]}: a pbt setting; scheduler.type is {sched.type}, not pbt")
        return
    if spec.search.algorithm != "random":
        raise ValueError(
            f"search.algorithm: pbt draws its population at random and changes it in training, which a "
            f"model of finished trials ({spec.search.algorithm}) can't learn from; leave search.algorithm out"
        )
    if key := _object_choice(spec):
        raise ValueError(f"params.{key}: pbt draws its population from choices of plain values, not of objects")
    for what, given in (("refit", spec.refit), ("repeat", spec.repeat is not None)):
        if given:
            raise ValueError(
                f"{what}: a pbt trial's weights come from a schedule of configurations that changed in training, "
                f"so training one configuration again is not that model; leave {what} out with pbt"
            )
    if spec.search.warm_start is not None:
        raise ValueError("search.warm_start: pbt draws its first population at random; leave warm_start out")
    _check_pbt_mutate(spec)


def pbt_mutated(spec: SweepSpec) -> list[str]:
    """The params pbt changes: the spec's `mutate`, or each mutable one the space searches."""
    given = spec.scheduler.mutate
    return list(given) if given is not None else [k for k in PBT_MUTABLE if k in spec.params]


def _check_pbt_mutate(spec: SweepSpec) -> None:
    """What pbt changes and when: mutable top-level params, at checkpoints before the end."""
    sched = spec.scheduler
    mutate = pbt_mutated(spec)
    for key in mutate:
        if key not in PBT_MUTABLE:
            raise ValueError(
                f"scheduler.mutate: {key!r} can't change in the middle of training; pbt changes "
                f"{', '.join(PBT_MUTABLE)}"
            )
        if key not in spec.params or chooses_objects(spec.params[key]):
            raise ValueError(
                f"scheduler.mutate: {key!r} is not a searched param of the space's top level (params.{key})"
            )
    if not mutate:
        raise ValueError(
            f"scheduler.mutate: pbt needs a param to change in training; search one of {', '.join(PBT_MUTABLE)} "
            "(params) or name it in scheduler.mutate"
        )
    if sched.perturbation_interval >= spec.max_epochs():
        raise ValueError(
            f"scheduler.perturbation_interval: {sched.perturbation_interval} epochs, and trials train at most "
            f"{spec.max_epochs()}, so pbt would never change one; give a shorter interval"
        )
    if sched.perturbation_interval % spec.checkpoint_every:
        raise ValueError(
            f"scheduler.perturbation_interval: {sched.perturbation_interval} is not a multiple of checkpoint_every "
            f"({spec.checkpoint_every}); a trial copies another's checkpoint at each interval"
        )


def _check_constraints(spec: SweepSpec) -> None:
    if not spec.constraints:
        return
    parse_all(spec.constraints)  # each names a stored metric, an operator and a number
    if not SEARCHERS[spec.search.algorithm].constraints:
        raise ValueError(
            f"constraints: only Optuna's samplers take constraints (its constraints_func); search.algorithm is "
            f"{spec.search.algorithm!r}: set it to {searchers.names('constraints')!r}, or leave the constraints out"
        )


def _check_objectives(spec: SweepSpec) -> None:
    objs = spec.objectives
    if objs is None:
        return
    if len(objs) < 2:
        raise ValueError(
            "objectives: give two or more (a single objective is `metric` and `mode`)"
            if objs
            else "objectives: empty; give two or more {metric, mode}, e.g. best_val_acc max and params min"
        )
    for i, o in enumerate(objs):
        first = next(j for j, x in enumerate(objs) if x.metric == o.metric)
        if first != i:
            raise ValueError(f"objectives[{i}].metric: {o.metric} is already objectives[{first}]")
        if OBJECTIVE_MODES[o.metric] != o.mode:
            raise ValueError(
                f"objectives[{i}].mode: {o.metric} is {OBJECTIVE_MODES[o.metric]}imized, not {o.mode}imized"
            )
    if not SEARCHERS[spec.search.algorithm].multi_objective:
        raise ValueError(
            f"search.algorithm: several objectives need {searchers.names('multi_objective')} (its "
            f"multi-objective TPE, or NSGA-II with search.optuna.sampler nsga2), not {spec.search.algorithm}"
        )
    if not SCHEDULERS[spec.scheduler.type].several_objectives:
        raise ValueError(
            f"scheduler.type: {spec.scheduler.type} stops trials by one metric and can't rank by several "
            "objectives; use fifo"
        )


def _check_repeat(spec: SweepSpec) -> None:
    if spec.budget is None:
        return
    need = spec.repeat_epochs() + spec.refit_epochs()
    if need < spec.budget.epochs:
        return
    parts = []
    if spec.repeat is not None:
        parts.append(
            f"repeat: {spec.repeat.top} configurations x {spec.repeat.seeds - 1} more seeds x up to "
            f"{spec.max_epochs()} epochs reserve {spec.repeat_epochs()} trial-epochs"
        )
    if spec.refit:
        parts.append(
            f"refit: up to {spec.max_epochs()} epochs on the training and validation images reserve "
            f"{spec.refit_epochs()} trial-epochs"
        )
    raise ValueError(f"{'; '.join(parts)}, which leaves nothing of budget.epochs ({spec.budget.epochs}) for the search")


def _check_refit_share(spec: SweepSpec) -> None:
    if spec.refit_share is None:
        return
    for what, given in (("refit", spec.refit), ("time_budget_s", spec.time_budget_s is not None)):
        if not given:
            raise ValueError(f"refit_share: a share of time_budget_s kept for the refit; it needs {what} too")


def _check_warm_start(spec: SweepSpec) -> None:
    if spec.search.warm_start is None:
        return
    if not SEARCHERS[spec.search.algorithm].warm_start:
        raise ValueError(
            f"search.warm_start: needs search.algorithm {searchers.names('warm_start')} (TPE learns from the "
            f"earlier trials), got {spec.search.algorithm}"
        )
    if spec.search.points_to_evaluate:
        raise ValueError(
            "search.warm_start and search.points_to_evaluate: use one (warm start gives the "
            "searcher evaluated points; points_to_evaluate asks it to run some)"
        )
    key = _object_choice(spec)
    if key:
        raise ValueError(
            f"search.warm_start: params.{key} chooses among objects; warm start takes spaces of plain values only"
        )


def _object_choice(spec: SweepSpec) -> str | None:
    """The first searched param that chooses among objects (sub-spaces), or None."""
    return next((key for key, p in spec.params.items() if chooses_objects(p, (dict, list))), None)


def _check_points(spec: SweepSpec) -> None:
    for i, point in enumerate(spec.search.points_to_evaluate):
        missing = set(spec.params) - set(point)
        extra = set(point) - set(spec.params)
        if missing or extra:
            raise ValueError(
                f"search.points_to_evaluate[{i}]: must name exactly the searched params "
                f"{sorted(spec.params)} (missing {sorted(missing)}, extra {sorted(extra)})"
            )
        for key, v in point.items():
            if is_train_key(key):
                _check_field(key, v, f"search.points_to_evaluate[{i}].{key}")


# ------------------------------------------------------------ the expanded space

# A point of the space: the trial config, and for each key the spec field that set it.
Point = tuple[dict[str, Any], dict[str, str]]


def _settings_of(name: str, p: Any, where: str) -> list[Point]:
    """Representative settings of one param: every choice branch (an object's own params
    expanded), and the ends of a range."""
    if not is_choice(p):
        return [({name: c}, {name: where}) for c in candidates(p)]
    out: list[Point] = []
    for i, v in enumerate(p.values):
        loc = f"{where}.values[{i}]"
        if not isinstance(v, dict):
            out.append(({name: v}, {name: loc}))
            continue
        parts = [
            _settings_of(k, sv, f"{loc}.{k}") if isinstance(sv, BaseModel) else [({k: sv}, {k: f"{loc}.{k}"})]
            for k, sv in v.items()
        ]
        out += [_merge(combo) for combo in itertools.product(*parts)]
    return out


def _merge(points) -> Point:
    cfg: dict[str, Any] = {}
    where: dict[str, str] = {}
    for c, w in points:
        cfg.update(c)
        where.update(w)
    return cfg, where


def expand_space(spec: SweepSpec, draws: int = CHECK_DRAWS) -> list[Point]:
    """Trial configs that cover the space cheaply (no data, no weights): every grid point and
    choice branch with ranges at their ends (at most CHECK_MAX_POINTS), plus `draws` random
    draws of the HyperOpt space."""
    base: Point = (dict(spec.fixed), {k: f"fixed.{k}" for k in spec.fixed})
    axes = [_settings_of(name, p, f"params.{name}") for name, p in spec.params.items()]
    points = [_merge([base, *combo]) for combo in itertools.islice(itertools.product(*axes), CHECK_MAX_POINTS)]
    if spec.search.algorithm != "grid" and spec.params and draws:
        from hyperopt.pyll.stochastic import sample

        space, rng = spaces.hyperopt_space(spec.fixed, spec.params), random.Random(0)
        origin = {k: w for _, where in points for k, w in where.items()}
        for _ in range(draws):
            import numpy as np

            cfg = flatten_config(sample(space, rng=np.random.default_rng(rng.randrange(2**32))))
            points.append((cfg, {k: origin.get(k, f"params.{k}") for k in cfg}))
    return points


def _check_point(spec: SweepSpec, cfg: dict[str, Any], where: dict[str, str]) -> None:
    """What no single field shows: combinations that would fail inside a trial."""
    model = cfg.get("model", TrainConfig.model_fields["model"].default)
    if cfg.get("pretrained") and model not in PRETRAINABLE:
        raise ValueError(
            f"{where.get('pretrained', 'pretrained')}: pretrained is true, but model {model!r} "
            f"({where.get('model', 'the default model')}) has no pretrained weights; only "
            f"{', '.join(sorted(PRETRAINABLE))} has. In a grid of models, pair it with its model: "
            '{"model": "resnet50", "pretrained": true}'
        )
    shaped = [k for k in ("width", "depth") if cfg.get(k, 1) != 1]
    if shaped and model not in SCALABLE:
        raise ValueError(
            f"{where.get(shaped[0], shaped[0])}: {shaped[0]} applies to {', '.join(sorted(SCALABLE))} only, "
            f"not to model {model!r} ({where.get('model', 'the default model')})"
        )
    _check_model_point(spec, model, cfg, where)
    n_train = spec.data.train_subset
    batch = cfg.get("batch_size", TrainConfig.model_fields["batch_size"].default)
    if n_train is not None and batch > n_train:
        raise ValueError(
            f"{where.get('batch_size', 'batch_size')}: batch size {batch} is larger than the "
            f"training subset of {n_train} images (data.train_subset)"
        )


def _check_model_point(spec: SweepSpec, model: str, cfg: dict[str, Any], where: dict[str, str]) -> None:
    size = spec.data.image_size
    if model in FIXED_SIZE_32 and size != 32:
        raise ValueError(
            f"data.image_size: model {model!r} ({where.get('model', 'the default model')}) takes 32x32 images "
            f"only (its layers' sizes are fixed), not {size}x{size}; airbench, resnet18, resnet50 and "
            "plug-in models take any size"
        )
    if registry.is_plugin(model):
        zoo_only = {"activation": "relu", "dropout": 0.0}
        for k, default in zoo_only.items():
            if cfg.get(k, default) != default:
                raise ValueError(
                    f"{where.get(k, k)}: {k} shapes the zoo's models; plug-in model {model!r} takes its own "
                    "arguments as model_args"
                )


def _check_method_fits(cfg: dict[str, Any], where: dict[str, str]) -> None:
    model = cfg.get("model", TrainConfig.model_fields["model"].default)
    misfit = inapplicable(model, cfg)
    if misfit is not None:
        field, why = misfit
        raise ValueError(f"{where.get(field, field)}: {why} ({where.get('model', 'the default model')})")


def check_expanded(spec: SweepSpec) -> None:
    """Every expanded trial config builds a valid TrainConfig and a valid combination: what
    would otherwise fail trial by trial, after retries, fails at submit, naming its field."""
    for cfg, where in expand_space(spec):
        train_cfg = {k: v for k, v in cfg.items() if k not in ADAPTER_FIELDS}
        _check_method_fits(train_cfg, where)
        try:
            TrainConfig.model_validate(train_cfg)
        except ValidationError as e:
            err = e.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else ""
            msg = err["msg"].removeprefix("Value error, ")
            if key == "model_args" and msg.startswith(MODEL_ARG):  # names its argument: say where the spec gave it
                arg, _, why = msg.partition(": ")
                raise ValueError(f"{where.get(arg, arg)}: {why}") from None
            raise ValueError(f"{where.get(key, key)}: {train_cfg.get(key)!r} is not a valid {key}: {msg}") from None
        _check_point(spec, cfg, where)


def needs_pretrained(spec: SweepSpec) -> set[str]:
    """The models whose ImageNet weights some trial of this sweep starts from."""
    return {cfg.get("model", "simple_cnn") for cfg, _ in expand_space(spec, draws=0) if cfg.get("pretrained")}


# ------------------------------------------------------------ limits and parsing


def check_limits(spec: SweepSpec, settings) -> None:
    """Sizes past the configured limits (Settings.max_*) are refused before anything runs."""
    if spec.total_trials() > settings.max_num_samples:
        hint = (
            "; under a budget num_samples defaults to budget.epochs: set it lower"
            if spec.budget and spec.num_samples == spec.budget.epochs
            else ""
        )
        raise SpecError(
            f"num_samples: {spec.total_trials()} trials is over the limit of {settings.max_num_samples}{hint}"
        )
    if spec.max_epochs() > settings.max_epochs:
        where = next(w for w, x in epoch_settings(spec) if max(_values_of(x)) > settings.max_epochs)
        raise SpecError(
            f"{where}: up to {spec.max_epochs()} epochs is over the limit of {settings.max_epochs} "
            "(CIFAR_SWEEPS_MAX_EPOCHS)"
        )
    if spec.max_concurrent_trials > settings.max_concurrent_trials:
        raise SpecError(
            f"max_concurrent_trials: {spec.max_concurrent_trials} is over the limit of {settings.max_concurrent_trials}"
        )


def format_validation_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after"))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg)
    return "; ".join(parts)


def parse_spec(raw: dict[str, Any] | str | bytes, settings=None) -> SweepSpec:
    """JSON text or a dict -> SweepSpec, or SpecError naming the field. With `settings`, its
    limits apply and its test_hooks switch says whether the fault-injection keys are known."""
    token = TEST_HOOKS.set(bool(settings is not None and settings.test_hooks))
    try:
        spec = SweepSpec.model_validate_json(raw) if isinstance(raw, (str, bytes)) else SweepSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(format_validation_error(e)) from None
    finally:
        TEST_HOOKS.reset(token)
    if settings is not None:
        check_limits(spec, settings)
    return spec


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`--set a.b=VALUE` edits: VALUE is JSON (a bare word is a string), dotted keys reach into
    nested objects, e.g. `fixed.epochs=15` or `resources_per_trial.gpu=0`."""
    raw = json.loads(json.dumps(raw))
    for item in overrides:
        key, eq, text = item.partition("=")
        if not eq or not key:
            raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. fixed.epochs=15")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError(f"--set {item!r}: {part} is not an object")
        node[last] = value
    return raw


def load_spec_file(path, settings=None) -> SweepSpec:
    """A spec file, or a preset by name (presets.py)."""
    from cifar_sweeps.sweepspec.presets import spec_text

    return parse_spec(spec_text(str(path)), settings)
