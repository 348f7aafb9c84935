"""What a finished sweep says about its space: each searched parameter's importance for the
sweep's metric, and the region its best trials came from.

Importance is Optuna's fANOVA (a random forest over the trials, its variance split per
parameter) on an in-memory study built from the stored trials: the spec gives each
parameter's distribution (log scales, integer steps, choices), the store gives each trial's
config and score. Nothing here is hand-written statistics.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import statistics
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from cifar_sweeps.analysis.ranking import searched
from cifar_sweeps.analysis.schemas import Importance, ParamImportance
from cifar_sweeps.errors import AnalysisBusy, NotEnoughTrials
from cifar_sweeps.store.states import TRIAL_COMPLETED
from cifar_sweeps.subprocs import end_pool
from cifar_sweeps.sweepspec.metrics import METRICS, OBJECTIVE_MODES, stored_value
from cifar_sweeps.sweepspec.schema import SweepSpec
from cifar_sweeps.sweepspec.spaces import chooses_objects, optuna_distribution

MIN_TRIALS = 5  # fewer trials than this say nothing about importance
MAX_TRIALS = 200  # fANOVA's cost grows faster than the trials: above this, a seeded sample
CACHE_SIZE = 32  # importances kept, by (sweep, its data version)
TOP_FRACTION = 0.2  # the best region: where the top fifth of the trials (at least 3) lie


_cache: OrderedDict[tuple[str, int, str], Importance] = OrderedDict()
_busy = threading.Lock()
_pool: ProcessPoolExecutor | None = None


@dataclass(frozen=True)
class TrialRow:
    """What importance reads of a stored trial, as plain data a worker process can take."""

    id: str
    status: str
    config: dict[str, Any]
    val_acc: float | None
    val_loss: float | None
    params: float | None = None
    latency_ms: float | None = None
    latency_ms_batch: float | None = None
    seconds: float | None = None


# The stored trial fields a score can be read from, besides val_acc and val_loss.
def for_objective(spec: SweepSpec, metric: str | None) -> SweepSpec:
    """The spec as if `metric` (one of its objectives) were its metric: importance per objective."""
    if metric is None or metric == spec.metric:
        return spec

    return spec.model_copy(update={"metric": metric, "mode": OBJECTIVE_MODES[metric]})


def cached_importance(spec: SweepSpec, sweep_id: str, version: int, load_trials) -> Importance:
    """`importance`, computed once per (sweep, data version) whatever the request's query,
    one computation at a time (a second gets AnalysisBusy, holding no thread), in a worker
    process: fANOVA's forest holds the GIL for seconds, which would stall every other
    request of the service. `load_trials()` reads the sweep's trials only on a miss."""
    key = (sweep_id, version, spec.metric)
    if key in _cache:
        return _cache[key]
    if not _busy.acquire(blocking=False):
        raise AnalysisBusy("another parameter importance is being computed; try again in a few seconds")
    try:
        if key not in _cache:
            rows = [
                TrialRow(
                    t.id,
                    t.status,
                    t.config,
                    t.val_acc,
                    t.val_loss,
                    t.params,
                    t.latency_ms,
                    t.latency_ms_batch,
                    t.seconds,
                )
                for t in searched(load_trials())  # a refit repeats its source's point
            ]
            _cache[key] = _compute(spec, sweep_id, rows)
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        return _cache[key]
    finally:
        _busy.release()


def _compute(spec: SweepSpec, sweep_id: str, rows: list[TrialRow]) -> Importance:
    global _pool
    if _pool is None:  # spawned, not forked: the service's threads and sockets stay behind
        _pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_end_with_parent,
            initargs=(os.getpid(),),
        )
    return _pool.submit(importance, spec, sweep_id, rows).result()


def shutdown_worker() -> None:
    """End the worker process (the service's shutdown calls this)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        end_pool(pool)


def _end_with_parent(parent: int) -> None:
    """In the worker: exit once the process that spawned it is gone. A service killed, or
    ended by the SIGTERM that uvicorn re-raises after its shutdown, runs no clean-up, and the
    worker would otherwise live on (it holds its own queue's pipe open, so it never reads EOF).
    Ctrl-C in the service's terminal reaches the worker too (one process group): the service
    ends it, so the worker ignores the signal instead of printing a KeyboardInterrupt trace."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _label(value: Any) -> Any:
    """A choice's value as Optuna can hold it: objects (sub-spaces) by their fixed keys."""
    if isinstance(value, dict):
        return json.dumps({k: v for k, v in value.items() if not isinstance(v, BaseModel)}, sort_keys=True)
    return value


def distribution(p: Any):
    """The Optuna distribution of a spec parameter: the searcher's own (spaces.py), with a
    choice among objects named by its fixed keys."""
    return optuna_distribution(p, label=_label)


def _value_of(name: str, p: Any, config: dict[str, Any]) -> Any:
    """The trial's value of a top-level parameter (a chosen object: the branch it matches)."""
    if chooses_objects(p):
        for v in p.values:
            fixed = {k: x for k, x in v.items() if not isinstance(x, BaseModel)} if isinstance(v, dict) else None
            if fixed is not None and all(config.get(k) == x for k, x in fixed.items()):
                return _label(v)
            if fixed is None and config.get(name) == v:
                return v
        return None
    return config.get(name)


def _study(spec: SweepSpec, trials: list) -> tuple[Any, list[tuple[dict[str, Any], float]], int]:
    """An in-memory study of the trials; also how many lie outside the spec's space."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per in-memory study
    dists = {name: distribution(p) for name, p in spec.params.items()}
    direction = "minimize" if spec.mode == "min" else "maximize"
    study = optuna.create_study(direction=direction, storage=optuna.storages.InMemoryStorage())
    used, outside = [], 0
    for t in trials:
        params = {name: _value_of(name, p, t.config) for name, p in spec.params.items()}
        if any(v is None for v in params.values()):
            outside += 1
            continue
        params = {
            k: (int(v) if isinstance(dists[k], optuna.distributions.IntDistribution) else v) for k, v in params.items()
        }
        try:
            study.add_trial(
                optuna.trial.create_trial(params=params, distributions=dists, value=stored_value(t, spec.metric))
            )
        except ValueError:  # "The value ... isn't contained in the distribution"
            outside += 1
            continue
        used.append((params, stored_value(t, spec.metric)))
    return study, used, outside


def _one_per_config(trials: list) -> list:
    """Each configuration once (repeats over seeds: ranking.py's group), scored at its mean,
    so a configuration run three times does not weigh three times in fANOVA's fit."""
    from types import SimpleNamespace

    from cifar_sweeps.analysis.ranking import group_key

    groups: dict[str, list] = {}
    for t in trials:
        groups.setdefault(group_key("", t.config or {}), []).append(t)  # the trials of one sweep
    out = []
    for members in groups.values():
        first = min(members, key=lambda t: t.id)
        if len(members) == 1:
            out.append(first)
            continue
        fields = {m.column for m in METRICS.values() if m.objective}  # every column a sweep may score by
        mean = {
            k: statistics.fmean(getattr(t, k) for t in members)
            for k in fields
            if all(getattr(t, k, None) is not None for t in members)
        }
        out.append(
            SimpleNamespace(
                id=first.id,
                config=first.config,
                status=first.status,
                **{k: mean.get(k) for k in fields},
            )
        )
    return out


def _sample(trials: list) -> list:
    """At most MAX_TRIALS of them, drawn with a fixed seed (the same answer every time)."""
    if len(trials) <= MAX_TRIALS:
        return trials
    return random.Random(0).sample(sorted(trials, key=lambda t: t.id), MAX_TRIALS)


def _best_region(name: str, dist, top: list[dict[str, Any]]) -> dict[str, Any]:
    from collections import Counter

    from optuna.distributions import CategoricalDistribution

    values = [p[name] for p in top]
    if isinstance(dist, CategoricalDistribution):
        return {"best_values": [v for v, _ in Counter(values).most_common()]}
    return {"best_low": float(min(values)), "best_high": float(max(values))}


def importance(spec: SweepSpec, sweep_id: str, trials: list) -> Importance:
    """fANOVA importance of each searched parameter, and the best region of each."""
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    if not spec.params:
        raise NotEnoughTrials(f"sweep {sweep_id} searched no parameter: there is nothing to rank")
    finished = [t for t in searched(trials) if t.status in TRIAL_COMPLETED and stored_value(t, spec.metric) is not None]
    finished = _one_per_config(finished)
    study, used, outside = _study(spec, _sample(finished))
    if len(used) < MIN_TRIALS:
        inside = f" inside its space ({outside} outside it)" if outside else ""
        raise NotEnoughTrials(
            f"sweep {sweep_id} has {len(used)} finished trial(s) with a {spec.metric}{inside}; "
            f"parameter importance needs at least {MIN_TRIALS}"
        )
    if len({value for _, value in used}) == 1:  # fANOVA has no variance to split (a RuntimeError)
        raise NotEnoughTrials(
            f"sweep {sweep_id}'s {len(used)} finished trials all scored {spec.metric} {used[0][1]:.4g}: "
            "no parameter explains a difference"
        )
    scores = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0), normalize=True)
    ranked = sorted(used, key=lambda u: u[1], reverse=spec.mode == "max")
    top = [p for p, _ in ranked[: max(3, round(TOP_FRACTION * len(used)))]]
    out = []
    for name, dist in study.trials[0].distributions.items():
        kind = (
            "choice"
            if isinstance(dist, CategoricalDistribution)
            else "int"
            if isinstance(dist, IntDistribution)
            else "float"
        )
        out.append(
            ParamImportance(
                name=name,
                importance=float(scores.get(name, 0.0)),
                kind=kind,
                log=bool(getattr(dist, "log", False)),
                **_best_region(name, dist, top),
            )
        )
    out.sort(key=lambda p: p.importance, reverse=True)
    return Importance(
        sweep_id=sweep_id,
        metric=spec.metric,
        direction=study.direction.name.lower(),
        trials_used=len(used),
        top_trials=len(top),
        trials_finished=len(finished),
        sampled=len(finished) > MAX_TRIALS,
        trials_outside_space=outside,
        params=out,
    )
