"""The search algorithm of a sweep: HyperOpt's TPE (or its random draws) or Optuna's TPE
over the spec's space, optionally warm-started with the finished trials of earlier sweeps
(warm.py)."""

from __future__ import annotations

from typing import Any

from ray.tune.search.hyperopt import HyperOptSearch

from cifar_sweeps.spec import (
    Choice,
    LogUniform,
    OptunaOptions,
    QLogUniform,
    QUniform,
    RandInt,
    SweepSpec,
    to_hyperopt_space,
)


class WarmHyperOptSearch(HyperOptSearch):
    """HyperOptSearch whose history starts with trials already evaluated elsewhere.

    Ray's HyperOptSearch turns `points_to_evaluate` into hyperopt trial documents (choice
    values into hyperopt's indices) and then suggests them. Here the same documents are
    marked done with their scores instead and never suggested: TPE counts them in its
    history (towards `n_initial_points` too) and no old config is trained again."""

    def __init__(self, *args: Any, evaluated: list[tuple[dict[str, Any], float]], **kwargs: Any):
        self._evaluated = list(evaluated)
        kwargs["points_to_evaluate"] = [dict(values) for values, _ in self._evaluated]
        super().__init__(*args, **kwargs)

    def _setup_hyperopt(self) -> None:
        import hyperopt as hpo

        super()._setup_hyperopt()
        # The parent reversed the points (hyperopt pops them LIFO): document i is point n-1-i.
        for doc, (_, score) in zip(self._hpopt_trials.trials, reversed(self._evaluated), strict=True):
            doc["state"] = hpo.base.JOB_STATE_DONE
            doc["result"] = {"loss": self.metric_op * score, "status": hpo.STATUS_OK}
        self._hpopt_trials.refresh()
        self._points_to_evaluate = 0  # suggest none of them

    @property
    def warm_trials(self) -> int:
        """The evaluated trials in the searcher's history (what the tests observe)."""
        return sum(1 for t in self._hpopt_trials.trials if t["result"].get("status") == "ok")


def make_search(spec: SweepSpec, evaluated: list[tuple[dict[str, Any], float]] | None = None):
    """The Tune searcher for the spec (None for a grid: Tune walks `param_space` itself)."""
    s = spec.search
    if s.algorithm == "grid":
        return None
    if s.algorithm == "optuna":
        return make_optuna(spec, evaluated or [])
    n_initial = spec.num_samples if s.algorithm == "random" else s.n_initial_points
    kwargs = dict(space=to_hyperopt_space(spec), metric=spec.metric, mode=spec.mode,
                  n_initial_points=n_initial, random_state_seed=s.seed)
    if evaluated:
        return WarmHyperOptSearch(evaluated=[({**spec.fixed, **v}, score) for v, score in evaluated], **kwargs)
    return HyperOptSearch(points_to_evaluate=[{**spec.fixed, **p} for p in s.points_to_evaluate] or None, **kwargs)


def make_optuna(spec: SweepSpec, evaluated: list[tuple[dict[str, Any], float]]):
    """Ray's OptunaSearch with Optuna's TPESampler over the searched params (the fixed values
    join each trial's config through the Tuner's param_space: `param_space`). Earlier
    sweeps' trials go in as Optuna trials already evaluated (`evaluated_rewards`)."""
    import warnings

    import optuna
    from ray.tune.search.optuna import OptunaSearch

    options = spec.search.optuna or OptunaOptions()
    with warnings.catch_warnings():  # multivariate and constant_liar are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=spec.search.seed, n_startup_trials=spec.search.n_initial_points,
            multivariate=options.multivariate, constant_liar=options.constant_liar)
    points = [dict(p) for p in spec.search.points_to_evaluate] or [dict(v) for v, _ in evaluated] or None
    return OptunaSearch(space={k: optuna_distribution(p) for k, p in spec.params.items()}, metric=spec.metric,
                        mode=spec.mode, sampler=sampler, points_to_evaluate=points,
                        evaluated_rewards=[score for _, score in evaluated] or None)


def optuna_distribution(p: Any):
    """The Optuna distribution that draws what the spec's param draws (ints stay ints)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(p, Choice):
        return CategoricalDistribution(list(p.values))
    if isinstance(p, RandInt):
        return IntDistribution(p.low, p.high - 1)  # the spec's high is exclusive, Optuna's inclusive
    integral = isinstance(p, (QUniform, QLogUniform)) and all(float(x).is_integer() for x in (p.low, p.high, p.q))
    if isinstance(p, QUniform):
        return (IntDistribution(int(p.low), int(p.high), step=int(p.q)) if integral
                else FloatDistribution(p.low, p.high, step=p.q))
    if isinstance(p, QLogUniform):  # q == 1 (spec.py refuses others for optuna)
        return IntDistribution(int(p.low), int(p.high), log=True) if integral else FloatDistribution(
            p.low, p.high, log=True)
    return FloatDistribution(p.low, p.high, log=isinstance(p, LogUniform))


def param_space(spec: SweepSpec) -> dict[str, Any] | None:
    """What the Tuner gets as param_space: a grid's axes, Optuna's fixed values, or None
    (a HyperOpt space carries its fixed values itself)."""
    from cifar_sweeps.spec import to_grid_space

    if spec.search.algorithm == "grid":
        return to_grid_space(spec)
    if spec.search.algorithm == "optuna":
        return dict(spec.fixed)
    return None
