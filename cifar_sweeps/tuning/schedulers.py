"""The trial scheduler of a sweep: FIFO, ASHA, or BOHB's HyperBand; each one refuses to run
again a trial that the store holds as ended.

Why the store decides: Tune restores a sweep from its last experiment snapshot (every
0.5 s, sweep.py). A trial that a scheduler stopped between that snapshot and a driver kill
is `early_stopped` in the store but unfinished in the snapshot, and the restored run would
train it again. The store is the record the API, the page and the leaderboard read, so a
trial it holds as ended stays ended."""

from __future__ import annotations

import math
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandForBOHB

from cifar_sweeps.spec.spec import SweepSpec
from cifar_sweeps.store.states import TRIAL_COMPLETED


class _StoreGuard:
    """Mixin over a Tune scheduler: a trial the store holds as ended is stopped instead of
    run. Holds the store's URL, not a connection: the scheduler is pickled with the Tuner
    and unpickled by `Tuner.restore` in the resuming driver."""

    def __init__(self, *args: Any, store_url: str, sweep_id: str, **kwargs: Any):
        self.store_url, self.sweep_id = store_url, sweep_id
        self._ended_ids: set[str] | None = None
        super().__init__(*args, **kwargs)

    def _ended(self) -> set[str]:
        """Tune ids of the trials that had ended when this driver started (read once: a
        trial that ends during this run is finished in Tune's own state too)."""
        if self._ended_ids is None:
            from cifar_sweeps.store.store import get_store

            trials = get_store(self.store_url).trials(self.sweep_id)
            self._ended_ids = {t.tune_trial_id for t in trials if t.status in TRIAL_COMPLETED}
        return self._ended_ids

    def choose_trial_to_run(self, tune_controller, *args: Any, **kwargs: Any) -> Trial | None:
        while True:
            trial = super().choose_trial_to_run(tune_controller, *args, **kwargs)
            if trial is None or trial.trial_id not in self._ended():
                return trial
            tune_controller.stop_trial(trial)  # PENDING/PAUSED -> TERMINATED, never started

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ended_ids": None}


class GuardedFIFO(_StoreGuard, FIFOScheduler):
    pass


class GuardedASHA(_StoreGuard, ASHAScheduler):
    pass


class ResumableHyperBandForBOHB(_StoreGuard, HyperBandForBOHB):
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
    if spec.scheduler.type == "fifo":
        return frozenset()
    if spec.scheduler.type == "hyperband":
        return None
    max_t = spec.max_epochs()
    grace, rf = min(spec.scheduler.grace_period, max_t), spec.scheduler.reduction_factor
    rungs = int(math.log(max_t / grace) / math.log(rf) + 1)  # Ray's _Bracket: MAX_RUNGS
    return frozenset(math.ceil(grace * rf**k) for k in range(rungs))  # judged at epoch >= milestone


def make_scheduler(spec: SweepSpec, store_url: str, sweep_id: str):
    guard = {"store_url": store_url, "sweep_id": sweep_id}
    if spec.scheduler.type == "fifo":
        return GuardedFIFO(**guard)
    max_t = spec.max_epochs()
    if spec.scheduler.type == "hyperband":
        # BOHB's HyperBand: brackets of successive halving over epochs, trials paused at each
        # rung (from their checkpoint) until the rung is judged; stop_last_trials ends them at max_t.
        return ResumableHyperBandForBOHB(
            time_attr="epoch",
            metric=spec.metric,
            mode=spec.mode,
            max_t=max_t,
            reduction_factor=spec.scheduler.reduction_factor,
            **guard,
        )
    return GuardedASHA(
        time_attr="epoch",
        metric=spec.metric,
        mode=spec.mode,
        max_t=max_t,
        grace_period=min(spec.scheduler.grace_period, max_t),
        reduction_factor=spec.scheduler.reduction_factor,
        **guard,
    )
