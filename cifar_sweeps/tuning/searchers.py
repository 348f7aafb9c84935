"""The search algorithm of a sweep: HyperOpt's TPE (or its random draws), Optuna's TPE or
BOHB over the spec's space; TPE optionally warm-started with the finished trials of
earlier sweeps (warm.py)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ray.tune.search.bohb import TuneBOHB
from ray.tune.search.hyperopt import HyperOptSearch
from ray.tune.search.optuna import OptunaSearch

from cifar_sweeps.sweepspec.constraints import parse_all
from cifar_sweeps.sweepspec.schema import OptunaOptions, SweepSpec
from cifar_sweeps.sweepspec.searchers import SEARCHERS
from cifar_sweeps.sweepspec.spaces import Codec, configspace_hyperparameter, hyperopt_space, optuna_distribution


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
    """The Tune searcher for the spec: its algorithm's factory (FACTORIES), or a pbt
    population's random draws; None for a grid (Tune walks `param_space` itself)."""
    if spec.scheduler.type == "pbt" and not SEARCHERS[spec.search.algorithm].grid:
        from cifar_sweeps.tuning.pbt import population

        return population(spec)
    return FACTORIES[spec.search.algorithm](spec, evaluated or [])


def make_hyperopt(spec: SweepSpec, evaluated: list[tuple[dict[str, Any], float]], n_initial: int | None = None):
    """HyperOpt's TPE after `n_initial` random trials (the spec's n_initial_points), warm
    started with earlier sweeps' trials when given."""
    s = spec.search
    kwargs = dict(
        space=hyperopt_space(spec.fixed, spec.params),
        metric=spec.metric,
        mode=spec.mode,
        n_initial_points=n_initial or s.n_initial_points,
        random_state_seed=s.seed,
    )
    if evaluated:
        return WarmHyperOptSearch(evaluated=[({**spec.fixed, **v}, score) for v, score in evaluated], **kwargs)
    return HyperOptSearch(points_to_evaluate=[{**spec.fixed, **p} for p in s.points_to_evaluate] or None, **kwargs)


def make_optuna(spec: SweepSpec, evaluated: list[tuple[dict[str, Any], Any]]):
    """Ray's OptunaSearch with Optuna's TPESampler over the searched params (the fixed values
    join each trial's config through the Tuner's param_space: `param_space`). Earlier
    sweeps' trials go in as Optuna trials already evaluated (`evaluated_rewards`). With
    several objectives: the objectives' metrics and modes, TPE's multi-objective form or
    NSGA-II, and each evaluated trial's values as a list."""
    import optuna

    options = spec.search.optuna or OptunaOptions()
    constraints = parse_all(spec.constraints)
    constrained = constraint_values if constraints else None
    with warnings.catch_warnings():  # multivariate and constant_liar are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if options.sampler == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(seed=spec.search.seed, constraints_func=constrained)
        else:
            sampler = optuna.samplers.TPESampler(
                seed=spec.search.seed,
                n_startup_trials=spec.search.n_initial_points,
                multivariate=options.multivariate,
                constant_liar=options.constant_liar,
                constraints_func=constrained,
            )
    points = [dict(p) for p in spec.search.points_to_evaluate] or [dict(v) for v, _ in evaluated] or None
    objectives = spec.objectives or []
    return MultiObjectiveOptunaSearch(
        space={k: optuna_distribution(p) for k, p in spec.params.items()},
        metric=[o.metric for o in objectives] if objectives else spec.metric,
        mode=[o.mode for o in objectives] if objectives else spec.mode,
        sampler=sampler,
        points_to_evaluate=points,
        evaluated_rewards=[score for _, score in evaluated] or None,
        constraints=constraints,
    )


CONSTRAINTS_ATTR = "cifar_sweeps_constraints"  # an Optuna trial's violations, set as it completes


def constraint_values(trial) -> list[float]:
    """Optuna's constraints_func: the violations the trial was given as it completed (<= 0:
    feasible); a trial completed without them (a warm start's) counts as feasible."""
    return list(trial.user_attrs.get(CONSTRAINTS_ATTR, [0.0]))


class MultiObjectiveOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, whose evaluated points (a warm start) may carry several objective
    values: Ray's hands Optuna `value=` always, which a multi-objective study refuses. With
    constraints, each trial's violations (from its reported cost metrics) are set on its
    Optuna trial before it is told, where the sampler's constraints_func reads them."""

    def __init__(self, *args: Any, constraints: list | None = None, **kwargs: Any):
        self._constraints = constraints or []
        super().__init__(*args, **kwargs)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if self._constraints and ot_trial is not None and trial_id not in self._completed_trials:
            values = [c.violation((result or {}).get(c.metric)) for c in self._constraints]
            ot_trial.set_user_attr(CONSTRAINTS_ATTR, values)
        super().on_trial_complete(trial_id, result, error)

    def add_evaluated_point(self, parameters, value, error=False, pruned=False, intermediate_values=None):
        if not isinstance(value, (list, tuple)):
            return super().add_evaluated_point(parameters, value, error, pruned, intermediate_values)
        import optuna

        self._ot_study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE, values=list(value), params=parameters, distributions=self._space
            )
        )
        return None


def param_space(spec: SweepSpec) -> dict[str, Any] | None:
    """What the Tuner gets as param_space: a grid's axes; the fixed values for Optuna and
    BOHB; a pbt population's domains; or None (a HyperOpt space carries its fixed values itself)."""
    searcher = SEARCHERS[spec.search.algorithm]
    if searcher.grid:
        return grid_space(spec.fixed, spec.params)
    if spec.scheduler.type == "pbt":
        from cifar_sweeps.tuning.pbt import population_space

        return population_space(spec)
    return dict(spec.fixed) if searcher.fixed_in_param_space else None


def make_bohb(spec: SweepSpec):
    """Ray's TuneBOHB over a ConfigSpace of the searched params (the fixed values join each
    trial's config through `param_space`); it runs with ResumableHyperBandForBOHB
    (schedulers.py), whose rungs give it each result's budget."""
    import ConfigSpace as CS

    space = CS.ConfigurationSpace(seed=spec.search.seed)
    codecs: dict[str, Codec] = {}
    for name, p in spec.params.items():
        hp, codecs[name] = configspace_hyperparameter(name, p)
        space.add(hp)
    # BOHB fits its model at a budget once it has this many results there (at least the
    # dimension + 1, which hpbandster requires): the spec's random trials before the model.
    min_points = max(spec.search.n_initial_points, len(spec.params) + 1)
    points = [dict(p) for p in spec.search.points_to_evaluate] or None
    return PlainTuneBOHB(
        space=space,
        metric=spec.metric,
        mode=spec.mode,
        seed=spec.search.seed,
        bohb_config={"min_points_in_model": min_points},
        points_to_evaluate=points,
        codecs=codecs,
    )


class PlainTuneBOHB(TuneBOHB):
    """TuneBOHB that suggests the spec's own values (plain Python, choices as written) and
    that survives a restore: Ray's forgets a trial's config when the trial completes, and a
    restored run reports again trials that completed after the last snapshot (KeyError in
    `to_wrapper`); here a config is kept, and recovered from the result where it is not."""

    def __init__(self, *args: Any, codecs: dict[str, Codec], **kwargs: Any):
        self._codecs = codecs
        points = kwargs.pop("points_to_evaluate", None) or []
        super().__init__(*args, points_to_evaluate=[self._encode(p) for p in points] or None, **kwargs)

    def _setup_bohb(self) -> None:
        import numpy as np

        if self._seed is not None:  # hpbandster draws its random configs and KDE samples with numpy's global RNG
            np.random.seed(self._seed)
        super()._setup_bohb()

    def suggest(self, trial_id: str) -> dict | None:
        with _quiet_kde():
            config = super().suggest(trial_id)
        return None if config is None else {k: self._codecs[k].decode(v) for k, v in config.items()}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.trial_to_params and "config" in result:
            self.trial_to_params[trial_id] = self._encode(result["config"])
        with _quiet_kde():
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.paused.discard(trial_id)
        self.running.discard(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        # Which trials run and which wait at a rung is the restored run's to say: its trials
        # are pending again, and each rejoins `running` with its first result.
        self.running.clear()
        self.paused.clear()

    def _encode(self, config: dict[str, Any]) -> dict[str, Any]:
        """A trial's config (or a point to evaluate) in the ConfigSpace's terms: its
        searched params only."""
        return {k: c.encode(config[k]) for k, c in self._codecs.items() if k in config}


@contextmanager
def _quiet_kde() -> Iterator[None]:
    """hpbandster fits statsmodels KDEs: while every good (or every bad) config at a budget
    shares a choice's value, that choice's kernel divides by its one level minus one (a
    RuntimeWarning per fit), and statsmodels warns of a future RNG default (FutureWarning).
    Neither is the sweep user's to act on, and each would print once per result."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def grid_space(fixed: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A Tune param space for the grid algorithm: fixed values plus grid_search axes (a grid
    takes choice params only: sweepspec/schema.py)."""
    from ray import tune

    return {**fixed, **{name: tune.grid_search(list(p.values)) for name, p in params.items()}}


# Each searcher of the registry (sweepspec/searchers.py) and what builds it: (spec, the evaluated
# trials of a warm start) -> a Tune searcher, or None where Tune walks the space itself.
FACTORIES: dict[str, Callable[[SweepSpec, list], Any]] = {
    "hyperopt": make_hyperopt,
    "random": lambda spec, evaluated: make_hyperopt(spec, evaluated, n_initial=spec.num_samples),
    "grid": lambda spec, evaluated: None,
    "optuna": make_optuna,
    "bohb": lambda spec, evaluated: make_bohb(spec),
}
