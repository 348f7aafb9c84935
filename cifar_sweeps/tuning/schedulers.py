"""The trial scheduler of a sweep: FIFO, ASHA, BOHB's HyperBand, or PBT (pbt.py), each
guarded by the store (guard.py): none runs again a trial that the store holds as ended."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandForBOHB

from cifar_sweeps.sweepspec.schedulers import SCHEDULERS
from cifar_sweeps.sweepspec.schema import SweepSpec
from cifar_sweeps.tuning.guard import StoreGuard


class GuardedFIFO(StoreGuard, FIFOScheduler):
    pass


class GuardedASHA(StoreGuard, ASHAScheduler):
    pass


class ResumableHyperBandForBOHB(StoreGuard, HyperBandForBOHB):
    """BOHB's HyperBand, resumable. Tune hands a restored run's finished trials to the
    scheduler too; in a bracket they would count as live forever, so the bracket would
    never fill or halve and its paused trials would wait for good. They stay out of the
    brackets. A trial paused at a rung when the driver died is restored as pending and
    placed in a bracket of the new run, which judges it again from its next result."""

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        if trial.status in (Trial.TERMINATED, Trial.ERROR):
            return
        super().on_trial_add(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        if trial in self._trial_info:
            super().on_trial_remove(tune_controller, trial)


def decision_epochs(spec: SweepSpec) -> frozenset[int] | None:
    """The epochs after which the scheduler may stop a trial, besides its last: where a
    trial tests its best weights (a test of 10,000 images with TTA costs about half an
    epoch of a small CPU's time; testing each new best instead spent a third of an hour's
    sweep on it). FIFO: none. ASHA: its rungs, grace_period x reduction_factor^k below
    max_t, as Ray's bracket 0 places them. HyperBand: None, each new best (its brackets
    place rungs per trial)."""
    if not SCHEDULERS[spec.scheduler.type].stops_trials:  # pbt pauses and copies trials, it stops none
        return frozenset()
    if spec.scheduler.type == "hyperband":
        return None
    max_t = spec.max_epochs()
    grace, rf = min(spec.scheduler.grace_period, max_t), spec.scheduler.reduction_factor
    rungs = int(math.log(max_t / grace) / math.log(rf) + 1)  # Ray's _Bracket: MAX_RUNGS
    return frozenset(math.ceil(grace * rf**k) for k in range(rungs))  # judged at epoch >= milestone


def make_scheduler(spec: SweepSpec, store_url: str, sweep_id: str):
    """The spec's scheduler (FACTORIES), guarded by the store."""
    return FACTORIES[spec.scheduler.type](spec, {"store_url": store_url, "sweep_id": sweep_id})


def make_pbt(spec: SweepSpec, guard: dict):
    from cifar_sweeps.tuning.pbt import make_pbt as pbt

    return pbt(spec, guard)


def make_hyperband(spec: SweepSpec, guard: dict) -> ResumableHyperBandForBOHB:
    """BOHB's HyperBand: brackets of successive halving over epochs, trials paused at each
    rung (from their checkpoint) until the rung is judged; stop_last_trials ends them at max_t."""
    return ResumableHyperBandForBOHB(
        time_attr="epoch",
        metric=spec.metric,
        mode=spec.mode,
        max_t=spec.max_epochs(),
        reduction_factor=spec.scheduler.reduction_factor,
        **guard,
    )


def make_asha(spec: SweepSpec, guard: dict) -> GuardedASHA:
    max_t = spec.max_epochs()
    return GuardedASHA(
        time_attr="epoch",
        metric=spec.metric,
        mode=spec.mode,
        max_t=max_t,
        grace_period=min(spec.scheduler.grace_period, max_t),
        reduction_factor=spec.scheduler.reduction_factor,
        **guard,
    )


# Each scheduler of the registry (sweepspec/schedulers.py) and what builds it: (spec, the store
# guard's arguments) -> a Tune scheduler.
FACTORIES: dict[str, Callable[[SweepSpec, dict], Any]] = {
    "asha": make_asha,
    "fifo": lambda spec, guard: GuardedFIFO(**guard),
    "hyperband": make_hyperband,
    "pbt": make_pbt,
}
