"""The searched parameters: their six types (HyperOpt's vocabulary) and the one place where a
type becomes another library's object: a hyperopt node, an Optuna distribution, a
ConfigSpace hyperparameter, a grid axis, the values that bound it, or a membership test.

The searchers (the driver), the analysis (the API's worker) and warm start all read these
mappings, so the space fANOVA judges is the space the sampler drew from. Free of torch and
Ray. A choice whose values are objects is a conditional sub-space: the chosen object's keys
join the trial config (e.g. an optimizer with its own learning-rate range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

PARAM_TYPES = ("uniform", "loguniform", "quniform", "qloguniform", "randint", "choice")


class Strict(BaseModel):
    # strict: 0 is not a bool and "3" is not a number; unknown keys are errors; no inf or NaN.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class _Range(Strict):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class _PositiveRange(_Range):
    @model_validator(mode="after")
    def _positive(self):
        if self.low <= 0:
            raise ValueError(f"low must be > 0 for a log scale, got {self.low}")
        return self


class Uniform(_Range):
    type: Literal["uniform"]


class LogUniform(_PositiveRange):
    type: Literal["loguniform"]


class QUniform(_Range):
    type: Literal["quniform"]
    q: float = Field(gt=0)


class QLogUniform(_PositiveRange):
    type: Literal["qloguniform"]
    q: float = Field(gt=0)


class RandInt(Strict):
    """Integers in [low, high) (high exclusive, as numpy and hyperopt)."""

    type: Literal["randint"]
    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self):
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class Choice(Strict):
    type: Literal["choice"]
    values: list[Any] = Field(min_length=1, max_length=1000)

    @field_validator("values")
    @classmethod
    def _sub_spaces(cls, values: list[Any]) -> list[Any]:
        # [32, "64"]: samplers, grids and the analysis need one type. Objects (sub-spaces) may
        # sit beside plain values: {"model": "resnet50", "pretrained": true} among model names.
        kinds = {_kind(v) for v in values if not isinstance(v, dict)}
        if len(kinds) > 1:
            raise ValueError(f"a choice's plain values share one type; these mix {' and '.join(sorted(kinds))}")
        return [_parse_sub_space(v) if isinstance(v, dict) else v for v in values]


def _kind(v: Any) -> str:
    """A choice value's type for the one-type rule: ints and floats are both numbers."""
    if isinstance(v, bool):
        return "booleans"
    if isinstance(v, (int, float)):
        return "numbers"
    if isinstance(v, str):
        return "strings"
    if isinstance(v, dict):
        return "objects"
    return "nulls" if v is None else "lists"


Param = Annotated[Uniform | LogUniform | QUniform | QLogUniform | RandInt | Choice, Field(discriminator="type")]


def is_param(v: Any) -> bool:
    """A param (parsed, or a dict naming a param type) rather than a plain value."""
    return isinstance(v, dict) and v.get("type") in PARAM_TYPES or isinstance(v, BaseModel)


def _parse_sub_space(obj: dict[str, Any]) -> dict[str, Any]:
    adapter = TypeAdapter(Param)
    return {k: adapter.validate_python(v) if is_param(v) else v for k, v in obj.items()}


# ------------------------------------------------------------ facts about one param


def is_choice(p: Any) -> bool:
    return isinstance(p, Choice)


def chooses_objects(p: Any, kinds: tuple[type, ...] = (dict,)) -> bool:
    """A choice among objects (sub-spaces); with kinds=(dict, list), lists count too."""
    return isinstance(p, Choice) and any(isinstance(v, kinds) for v in p.values)


def integral(p: Any) -> bool:
    """A q-param of whole-number bounds and step: hyperopt then draws ints (scope.int), and
    Optuna's and BOHB's spaces draw ints too, so a trial's `epochs` or `batch_size` is an int
    everywhere."""
    return isinstance(p, (QUniform, QLogUniform)) and all(float(x).is_integer() for x in (p.low, p.high, p.q))


def flat_equivalent(p: Any) -> bool:
    """Whether Optuna and ConfigSpace can draw it: a log scale there steps by 1 only."""
    return not (isinstance(p, QLogUniform) and p.q != 1)


def candidates(p: Any) -> list[Any]:
    """Values that bound what a parameter can take: its ends, or every plain choice."""
    if isinstance(p, (Uniform, LogUniform)):
        return [p.low, p.high]
    if isinstance(p, (QUniform, QLogUniform)):
        lo = round(p.low / p.q) * p.q
        hi = round(p.high / p.q) * p.q
        return [_as_int(max(lo, p.q if isinstance(p, QLogUniform) else lo)), _as_int(hi)]
    if isinstance(p, RandInt):
        return [p.low, p.high - 1]
    if isinstance(p, Choice):
        return [v for v in p.values if not isinstance(v, dict)]
    return [p]


def _as_int(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def in_domain(p: Any, value: Any) -> bool:
    """Whether `value` is one a param of this type could have drawn."""
    if isinstance(p, Choice):
        return value in p.values
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(p, RandInt):
        return float(value).is_integer() and p.low <= value < p.high
    return p.low <= value <= p.high


# ------------------------------------------------------------ HyperOpt and Tune's grid


def hyperopt_node(label: str, p: Any):
    """The hp node that draws what the param draws (plain values stay as they are)."""
    from hyperopt import hp
    from hyperopt.pyll import scope

    if not isinstance(p, BaseModel):
        return p
    if isinstance(p, Uniform):
        return hp.uniform(label, p.low, p.high)
    if isinstance(p, LogUniform):
        return hp.loguniform(label, math.log(p.low), math.log(p.high))
    if isinstance(p, (QUniform, QLogUniform)):
        node = (
            hp.quniform(label, p.low, p.high, p.q)
            if isinstance(p, QUniform)
            else hp.qloguniform(label, math.log(p.low), math.log(p.high), p.q)
        )
        return scope.int(node) if integral(p) else node
    if isinstance(p, RandInt):
        return scope.int(hp.randint(label, p.low, p.high))
    options = [
        {k: hyperopt_node(f"{label}/{i}/{k}", v) for k, v in opt.items()} if isinstance(opt, dict) else opt
        for i, opt in enumerate(p.values)
    ]
    return hp.choice(label, options)


def hyperopt_space(fixed: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A native HyperOpt space: fixed values as constants, params as hp nodes."""
    return {**fixed, **{name: hyperopt_node(name, p) for name, p in params.items()}}


def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    """Merge the chosen object of a conditional choice into the top level."""
    flat: dict[str, Any] = {}
    for k, v in config.items():
        if k == "model_args" and isinstance(v, dict):  # a plug-in's arguments: one flat key each
            flat.update({f"model_args.{a}": x for a, x in v.items()})
            continue
        # No other training field takes an object: an object is always a chosen sub-space, also
        # under a field's own name ({"model": "resnet50", "pretrained": true} of params.model).
        if isinstance(v, dict):
            flat.update(flatten_config(v))
        else:
            flat[k] = v
    return flat


# ------------------------------------------------------------ Optuna


def optuna_distribution(p: Any, label=lambda v: v):
    """The Optuna distribution that draws what the spec's param draws (ints stay ints, a
    quniform keeps its step); `label` names a choice's values (objects, for analysis)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(p, Choice):
        return CategoricalDistribution([label(v) for v in p.values])
    if isinstance(p, RandInt):
        return IntDistribution(p.low, p.high - 1)  # the spec's high is exclusive, Optuna's inclusive
    if isinstance(p, QUniform):
        return (
            IntDistribution(int(p.low), int(p.high), step=int(p.q))
            if integral(p)
            else FloatDistribution(p.low, p.high, step=p.q)
        )
    if isinstance(p, QLogUniform):
        # Optuna's log scale steps by 1 only (schema.py refuses q != 1 for its searcher): a
        # hyperopt sweep's q != 1 is judged on the log scale without its step, as the ints
        # (or floats) it drew.
        return (
            IntDistribution(int(p.low), int(p.high), log=True)
            if integral(p)
            else FloatDistribution(p.low, p.high, log=True)
        )
    return FloatDistribution(p.low, p.high, log=isinstance(p, LogUniform))


# ------------------------------------------------------------ ConfigSpace (BOHB)


@dataclass(frozen=True)
class Codec:
    """How a spec param's value and its ConfigSpace value map to each other: a choice by
    its index (ConfigSpace would hand back numpy copies of the values), a quniform by its
    step count (hpbandster's BOHB takes no ordinal or quantized params), others as they are."""

    values: tuple[Any, ...] = ()  # a choice's values
    q: float | None = None  # a quniform's step
    integral: bool = False  # a quniform of whole numbers: its values are ints

    def decode(self, v: Any) -> Any:
        v = v.item() if hasattr(v, "item") else v  # numpy scalar -> Python (configs go to JSON)
        if self.values:
            return self.values[v]
        if self.q is not None:
            return int(round(v * self.q)) if self.integral else v * self.q
        return v

    def encode(self, v: Any) -> Any:
        if self.values:
            return self.values.index(v)
        return round(v / self.q) if self.q is not None else v


def configspace_hyperparameter(name: str, p: Any) -> tuple[Any, Codec]:
    """The ConfigSpace hyperparameter that draws what the param draws, and its codec."""
    import ConfigSpace as CS

    if isinstance(p, Choice):
        return CS.CategoricalHyperparameter(name, choices=list(range(len(p.values)))), Codec(values=tuple(p.values))
    if isinstance(p, RandInt):  # the spec's high is exclusive, ConfigSpace's inclusive
        return CS.UniformIntegerHyperparameter(name, lower=p.low, upper=p.high - 1), Codec()
    if isinstance(p, QUniform):  # hyperopt's round(uniform(low, high) / q) * q, as steps of q
        lo, hi = round(p.low / p.q), round(p.high / p.q)
        return CS.UniformIntegerHyperparameter(name, lower=lo, upper=hi), Codec(q=p.q, integral=integral(p))
    if isinstance(p, QLogUniform) and integral(p):  # q == 1 (schema.py)
        return CS.UniformIntegerHyperparameter(name, lower=int(p.low), upper=int(p.high), log=True), Codec()
    log = isinstance(p, (LogUniform, QLogUniform))
    return CS.UniformFloatHyperparameter(name, lower=p.low, upper=p.high, log=log), Codec()
