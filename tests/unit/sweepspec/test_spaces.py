"""The space the analysis judges is the space each sampler draws from: for every parameter
type and every backend (hyperopt and random, Optuna, ConfigSpace for BOHB, Tune's grid),
draws from the backend lie in the analysis's distribution, and the backend's own domain
(type, bounds, step, log) is the one the analysis describes."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from hyperopt.pyll.stochastic import sample
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import TypeAdapter

from cifar_sweeps.analysis.importance import distribution
from cifar_sweeps.errors import SpecError
from cifar_sweeps.sweepspec import spaces
from cifar_sweeps.sweepspec.schema import parse_spec

DRAWS = 300
PARAMS = {
    "uniform": {"type": "uniform", "low": 0.0, "high": 0.5},
    "loguniform": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "quniform-float": {"type": "quniform", "low": 0.0, "high": 0.5, "q": 0.05},
    "quniform-int": {"type": "quniform", "low": 2, "high": 20, "q": 2},
    "qloguniform-int": {"type": "qloguniform", "low": 8, "high": 512, "q": 1},
    "qloguniform-step": {"type": "qloguniform", "low": 8, "high": 512, "q": 8},
    "randint": {"type": "randint", "low": 1, "high": 9},
    "choice": {"type": "choice", "values": ["relu", "elu", "silu"]},
}
BACKENDS = ("hyperopt", "optuna", "configspace", "grid")
# The training field each param is searched as in the submit check (any field whose limits
# hold the range: the mapping is what is tested, not the field).
FIELD = {
    "uniform": "label_smoothing",
    "loguniform": "lr",
    "quniform-float": "label_smoothing",
    "quniform-int": "epochs",
    "qloguniform-int": "batch_size",
    "qloguniform-step": "batch_size",
    "randint": "epochs",
    "choice": "activation",
}
ALGORITHM = {"hyperopt": "hyperopt", "optuna": "optuna", "configspace": "bohb", "grid": "grid"}


def _param(kind: str):
    return TypeAdapter(spaces.Param).validate_python(PARAMS[kind])


def _accepted(kind: str, backend: str) -> bool:
    """Whether a spec searching this param with this backend's algorithm is accepted."""
    try:
        parse_spec({"name": "s", "search": {"algorithm": ALGORITHM[backend]}, "params": {FIELD[kind]: PARAMS[kind]}})
        return True
    except SpecError:
        return False


def _draws(backend: str, p) -> list:
    if backend == "hyperopt":  # also the random algorithm: hyperopt's own draws
        node = spaces.hyperopt_node("x", p)
        return [sample(node, rng=np.random.default_rng(i)) for i in range(DRAWS)]
    if backend == "optuna":
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        return [study.ask({"x": spaces.optuna_distribution(p)}).params["x"] for _ in range(DRAWS)]
    if backend == "configspace":
        import ConfigSpace as CS

        hp, codec = spaces.configspace_hyperparameter("x", p)
        space = CS.ConfigurationSpace(seed=0)
        space.add(hp)
        return [codec.decode(c["x"]) for c in space.sample_configuration(DRAWS)]
    return list(p.values)  # grid: every value, as tune.grid_search walks them


def _configspace_domain(p) -> tuple:
    """(kind, low, high, log) of the ConfigSpace hyperparameter, in the spec's units."""
    hp, codec = spaces.configspace_hyperparameter("x", p)
    if codec.values:
        return ("choice", codec.values)
    lo, hi = codec.decode(hp.lower), codec.decode(hp.upper)
    kind = "int" if isinstance(lo, int) and isinstance(hi, int) else "float"
    return (kind, lo, hi, bool(hp.log))


def _analysis_domain(dist) -> tuple:
    if isinstance(dist, CategoricalDistribution):
        return ("choice", tuple(dist.choices))
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    return (kind, dist.low, dist.high, dist.log)


CASES = [(k, b) for k in PARAMS for b in BACKENDS]


@pytest.mark.parametrize(("kind", "backend"), CASES, ids=[f"{k}-{b}" for k, b in CASES])
def test_the_analysis_judges_the_space_the_sampler_draws_from(kind, backend):
    if not _accepted(kind, backend):
        # The spec refuses what this backend cannot draw; nothing reaches the analysis.
        assert backend == "grid" and kind != "choice" or kind == "qloguniform-step" and backend != "hyperopt"
        return
    p, dist = _param(kind), distribution(_param(kind))
    values = _draws(backend, p)
    outside = [v for v in values if not dist._contains(dist.to_internal_repr(v))]
    assert outside == [], f"{backend} drew values outside the analysis's {dist}"
    if isinstance(dist, IntDistribution):
        assert all(isinstance(v, int) for v in values), f"{backend} drew non-ints for an int domain"
    if isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None:
        assert all(abs((v - dist.low) / dist.step - round((v - dist.low) / dist.step)) < 1e-6 for v in values)
    if backend == "optuna":
        assert spaces.optuna_distribution(p) == dist
    if backend == "configspace":
        assert _configspace_domain(p) == _analysis_domain(dist)
    if backend in ("hyperopt", "optuna", "configspace") and kind != "choice":
        span = dist.high - dist.low
        # The draws cover the domain: none beyond it (above), and both ends approached.
        assert min(values) - dist.low < 0.2 * span and dist.high - max(values) < 0.5 * span


def test_every_type_has_a_case():
    assert {PARAMS[k]["type"] for k in PARAMS} == set(spaces.PARAM_TYPES)
