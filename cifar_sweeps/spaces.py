"""Where a spec parameter becomes another library's distribution. Free of torch and Ray, so
the searcher (the driver) and the analysis (the API's worker) read one mapping: the space
fANOVA judges is the space the sampler drew from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cifar_sweeps.spec import Choice, LogUniform, QLogUniform, QUniform, RandInt, integral


def optuna_distribution(p: Any, label: Callable[[Any], Any] = lambda v: v):
    """The Optuna distribution that draws what the spec's param draws (ints stay ints, a
    quniform keeps its step); `label` names a choice's values (objects, for analysis)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(p, Choice):
        return CategoricalDistribution([label(v) for v in p.values])
    if isinstance(p, RandInt):
        return IntDistribution(p.low, p.high - 1)  # the spec's high is exclusive, Optuna's inclusive
    whole = isinstance(p, (QUniform, QLogUniform)) and integral(p)
    if isinstance(p, QUniform):
        return (IntDistribution(int(p.low), int(p.high), step=int(p.q)) if whole
                else FloatDistribution(p.low, p.high, step=p.q))
    if isinstance(p, QLogUniform):
        # Optuna's log scale steps by 1 only (spec.py refuses q != 1 for its searcher); a
        # hyperopt sweep's q != 1 is judged on the log scale without its step.
        return (IntDistribution(int(p.low), int(p.high), log=True) if whole and p.q == 1
                else FloatDistribution(p.low, p.high, log=True))
    return FloatDistribution(p.low, p.high, log=isinstance(p, LogUniform))
