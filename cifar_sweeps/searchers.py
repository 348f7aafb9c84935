"""The search algorithm of a sweep: HyperOpt's TPE (or its random draws) over the spec's
space, optionally warm-started with the finished trials of earlier sweeps (warm.py)."""

from __future__ import annotations

from typing import Any

from ray.tune.search.hyperopt import HyperOptSearch

from cifar_sweeps.spec import SweepSpec, to_hyperopt_space


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
    n_initial = spec.num_samples if s.algorithm == "random" else s.n_initial_points
    kwargs = dict(space=to_hyperopt_space(spec), metric=spec.metric, mode=spec.mode,
                  n_initial_points=n_initial, random_state_seed=s.seed)
    if evaluated:
        return WarmHyperOptSearch(evaluated=[({**spec.fixed, **v}, score) for v, score in evaluated], **kwargs)
    return HyperOptSearch(points_to_evaluate=[{**spec.fixed, **p} for p in s.points_to_evaluate] or None, **kwargs)
