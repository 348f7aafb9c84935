"""The refit: after the search (and its repeats), the best configuration trained again on the
training and validation images and tested once. It is the sweep's model: a row of its own,
linked to the trial it came from (`refit_of`), ranked beside it, served as the sweep's model.

Which configuration: the best group of the search by the spec's metric (ranking.py: a
configuration's runs over seeds rank by their mean, a single run by itself), its best run's
config. How long: a schedule shaped by the run's length (onecycle, linear, cosine) trains its
full schedule, since a shorter run would train at other learning rates at every step; any other
schedule (none, exponential, step) trains the epochs of its best result, since its first k
epochs are the same whatever the run's length; with `refit_share`, as many epochs as fit in
the time budget left, at least those (`stretched`). It runs as a Tune trial of its own (experiment
`<sweep>-refit`), checkpointed every epoch, so a killed refit resumes from its checkpoint.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from cifar_sweeps.analysis.ranking import REFIT_OF, REPEAT_ID, best_trial, config_of, group_trials
from cifar_sweeps.store.states import TRIAL_COMPLETED, TrialStatus
from cifar_sweeps.sweepspec.config import LENGTH_SHAPED, TrainConfig, read_old_names
from cifar_sweeps.sweepspec.constraints import feasible

REFIT_ID = "refit"  # the refit's Tune id: its store row is "<sweep id>-refit", whichever driver runs it


@dataclass(frozen=True)
class RefitRun:
    source_id: str  # the store id of the search trial whose configuration it trains again
    config: dict[str, Any]  # the source's config with the refit's epochs
    epochs: int
    why: str  # which epochs, and why


def refit_epochs(config: dict[str, Any], best_epoch: int | None) -> tuple[int, str]:
    """The refit's epochs for a trial's config and best epoch, and why (see the module's note)."""
    cfg = TrainConfig.model_validate(read_old_names(config))
    if cfg.lr_schedule in LENGTH_SHAPED or not best_epoch:
        return cfg.epochs, f"its full schedule of {cfg.epochs} epochs ({cfg.lr_schedule} is shaped by the run's length)"
    return best_epoch, (
        f"the {best_epoch} epochs of its best result (a {cfg.lr_schedule} schedule's first epochs "
        "do not depend on the run's length)"
    )


def stretched(
    run: RefitRun,
    seconds_left: float,
    rates: list[float],
    images: int,
    cap: int,
    speedup: tuple[float, str] | None = None,
) -> RefitRun:
    """The refit given its share of the time budget (`refit_share`): as many epochs as fit
    in `seconds_left` at the median training rate of the search's epochs (`rates`, images per
    second with one trial's resources), times `speedup` (the factor and its reason: the refit
    runs alone with every slot's CPUs, plan.thread_speedup) when known, with REFIT_MARGIN,
    never fewer than its source's and at most `cap` (CIFAR_SWEEPS_MAX_EPOCHS). A schedule
    shaped by the run's length stretches with it."""
    rates = [r for r in rates if r > 0]
    if not rates or seconds_left <= 0:
        return run
    factor, how = speedup or (1.0, "the search's rate")
    per_epoch = images / (statistics.median(rates) * factor) * REFIT_MARGIN
    epochs = min(cap, int(seconds_left // per_epoch))
    if epochs <= run.epochs:
        return run
    why = (
        f"{epochs} epochs: what fits in its {seconds_left:.0f} s of the time budget "
        f"(refit_share) at {per_epoch:.1f} s an epoch ({how}); its source trained {run.epochs}"
    )
    return RefitRun(run.source_id, {**run.config, "epochs": epochs}, epochs, why)


# Trials a refit may come from once the search has ended: completed ones, and those still
# `running` in the store then, which a time or epoch budget cut (their driver ends them next).
REFIT_SOURCES = TRIAL_COMPLETED | {TrialStatus.RUNNING}


def plan_refit(trials: list, metric: str, mode: str, constraints: list | None = None) -> RefitRun | None:
    """The refit of the best configuration of the search, or None when no search trial has
    a score; with `constraints` (sweepspec/constraints.py), among the trials that keep them."""
    trials = [t for t in trials if getattr(t, "continue_of", None) is None]  # a continuation is no search trial
    if constraints:
        trials = [t for t in trials if feasible(constraints, t)]
    ranked = group_trials(trials, metric, mode, REFIT_SOURCES)  # the search's and its repeats', never a refit
    if not ranked:
        return None
    source = best_trial(ranked[0], metric, mode)
    epochs, why = refit_epochs(source.config, source.best_epoch)
    seed = (source.config or {}).get("seed")
    config = {**config_of(source.config), **({"seed": seed} if seed is not None else {}), "epochs": epochs}
    return RefitRun(source.id, config, epochs, why)


def refit_is_stale(trials: list, row: Any, run: RefitRun) -> bool:
    """Whether the refit done (`row`) trained another configuration than the one the refit
    rule picks now (`run`): not when only the seed differs (a repeat of the same
    configuration that scored higher), since the refit trains with its own run anyway."""
    if run.source_id == row.refit_of:
        return False
    configs = {t.id: config_of(t.config or {}) for t in trials}
    return configs.get(row.refit_of) != configs.get(run.source_id)


def tune_config(run: RefitRun) -> dict[str, Any]:
    """The refit's Tune config: its own stable id and its source, which the driver's store
    callback takes off before the trainable sees it; its best weights tested at its end."""
    return {**run.config, "test_on_best": True, REFIT_OF: run.source_id, REPEAT_ID: REFIT_ID}


def refit_row(trials: list) -> Any | None:
    """The sweep's refit row, if it has started."""
    return next((t for t in trials if getattr(t, "refit_of", None) is not None), None)


def refit_done(trials: list) -> bool:
    row = refit_row(trials)
    return row is not None and row.status in TRIAL_COMPLETED


# The refit's time over its training alone: its one test at the end, the trial's start and
# checkpoints (a stated margin, not measured per sweep).
REFIT_MARGIN = 1.05


def refit_seconds(
    trials: list, rates: list[float], metric: str, mode: str, max_epochs: int, refit_images: int
) -> float | None:
    """What the refit will take, from the sweep's own epochs so far: its images and epochs
    (the best trial's, or the max while none has completed) at the median training rate of
    the search's epochs (`rates`, images per second, measured with a trial's resources: the
    refit has at least those), with REFIT_MARGIN. None before any epoch."""
    rates = [r for r in rates if r > 0]
    if not rates:
        return None
    run = plan_refit(trials, metric, mode)
    epochs = run.epochs if run is not None else max_epochs
    return refit_images * epochs / statistics.median(rates) * REFIT_MARGIN
