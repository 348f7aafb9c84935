"""A trial that the store holds as ended is never run again, whatever the scheduler.

Why the store decides: Tune restores a sweep from its last experiment snapshot (every
0.5 s, driver.py). A trial that a scheduler stopped between that snapshot and a driver kill
is `early_stopped` in the store but unfinished in the snapshot, and the restored run would
train it again. The store is the record the API, the page and the leaderboard read, so a
trial it holds as ended stays ended."""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial

from cifar_sweeps.store.states import TRIAL_COMPLETED


class StoreGuard:
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
            from cifar_sweeps.store.queries import get_store

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
