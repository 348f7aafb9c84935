"""Warm start: the finished trials of earlier sweeps, as (searched values, score) pairs
that a new sweep's searcher takes as already evaluated, so TPE starts from what they
learned and none of them is trained again.

A trial is used only if it fits the new space: every searched param's value lies in its
new domain and every fixed value is the one the trial ran with (a score from another
model, epoch budget or data size says nothing about this space). Torch- and Ray-free: the
API checks a warm start at submit with the same code the driver uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cifar_sweeps.analysis.ranking import searched
from cifar_sweeps.errors import SpecError
from cifar_sweeps.store.states import TrialStatus
from cifar_sweeps.sweepspec.config import TrainConfig, read_old_names
from cifar_sweeps.sweepspec.metrics import METRICS, stored_value
from cifar_sweeps.sweepspec.schema import SweepSpec
from cifar_sweeps.sweepspec.spaces import flatten_config, in_domain

# Trials whose score means something: trained to the end, or stopped early by the
# scheduler (the searcher of their own sweep saw that score too). Errored ones have none.
USABLE = (TrialStatus.TERMINATED.value, TrialStatus.EARLY_STOPPED.value)


@dataclass(frozen=True)
class WarmPoints:
    points: list[tuple[dict[str, Any], float]]  # (searched param -> value, the spec's metric)
    seen: int  # finished trials of those sweeps, fitting or not

    @property
    def skipped(self) -> int:
        return self.seen - len(self.points)


def warm_points(spec: SweepSpec, store) -> WarmPoints:
    """The usable trials of `spec.search.warm_start`'s sweeps. SpecError (422) for an
    unknown sweep, or one whose space shares no searched param with this one."""
    warm = spec.search.warm_start
    if warm is None:
        return WarmPoints([], 0)
    points, seen = [], 0
    for i, sweep_id in enumerate(warm.sweeps):
        trials = _finished_trials(spec, store, sweep_id, f"search.warm_start.sweeps[{i}]")
        seen += len(trials)
        points += [(values, score) for values, score in ((_fit(spec, t), s) for t, s in trials) if values is not None]
    return WarmPoints(points, seen)


def _finished_trials(spec: SweepSpec, store, sweep_id: str, where: str) -> list[tuple[Any, float]]:
    sweep = store.get_sweep(sweep_id)
    if sweep is None:
        raise SpecError(f"{where}: no sweep {sweep_id!r} in the store")
    shared = set(spec.params) & set((sweep.spec or {}).get("params") or {})
    if not shared:
        raise SpecError(
            f"{where}: sweep {sweep_id} searched {sorted((sweep.spec or {}).get('params') or {})}, "
            f"which shares no param with this space's {sorted(spec.params)}"
        )
    out = []
    metrics = [o.metric for o in spec.objectives] if spec.objectives else [spec.metric]
    for t in searched(store.trials(sweep_id)):
        if t.status not in USABLE:
            continue
        scores = [_score(m, t, store) for m in metrics]
        if all(x is not None for x in scores):
            out.append((t, scores if spec.objectives else scores[0]))
    return out


def _score(metric: str, trial, store) -> float | None:
    """The trial's value of `metric` as its own searcher would have seen it (metrics.py)."""
    if METRICS[metric].scored_as != "epoch":
        return stored_value(trial, metric)
    last = store.epochs(trial.id)[-1:] if trial.epochs else []
    return getattr(last[0], METRICS[metric].column, None) if last else None


def _fit(spec: SweepSpec, trial) -> dict[str, Any] | None:
    """The trial's searched values if its config fits the new space, else None."""
    try:
        config = read_old_names(flatten_config(trial.config or {}))  # stored before a rename
    except ValueError:
        return None
    try:
        fixed = read_old_names(spec.fixed)
    except ValueError:
        return None
    defaults = TrainConfig()
    if any(config.get(key, getattr(defaults, key, None)) != value for key, value in fixed.items()):
        return None
    named = {key: "lr_schedule" if key == "scheduler" else key for key in spec.params}  # a renamed searched key
    if not all(named[key] in config and in_domain(p, config[named[key]]) for key, p in spec.params.items()):
        return None
    return {key: config[named[key]] for key in spec.params}
