"""The limits a running sweep reads from the store (sweepspec/limits.py): how many trials, how
many at once, and how long.

Tune fixes `num_samples` and `max_concurrent_trials` when a Tuner is built (a
ConcurrencyLimiter around the searcher, a SearchGenerator that counts to num_samples), and
ignores a change after (Ray #36080). `LiveSearch` is the SearchGenerator Tune is given
instead: it counts the trials it created, and the trials still running, against the values
the store holds now, read at most once a second. The time budget is the StoreStopper's
(driver.py), read on its own 2 s beat.
"""

from __future__ import annotations

import time

from ray.tune.search.search_generator import SearchGenerator

from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.limits import live_values

READ_EVERY_S = 1.0  # how stale a limit may be; one indexed row read each time


class LiveLimits:
    """The sweep's limits as the store holds them now, read at most every READ_EVERY_S.
    Holds the store's URL, not a connection, so Tune can pickle it with its state."""

    def __init__(self, store_url: str, sweep_id: str, num_samples: int, max_concurrent: int, budget_s: float | None):
        self.store_url, self.sweep_id = store_url, sweep_id
        self.values = (num_samples, max_concurrent, budget_s)
        self._read_at = 0.0

    def now(self) -> tuple[int, int, float | None]:
        t = time.monotonic()
        if t - self._read_at >= READ_EVERY_S:
            self._read_at = t
            sweep = get_store(self.store_url).get_sweep(self.sweep_id)
            if sweep is not None:  # a deleted row: keep the last values, the driver ends anyway
                new = live_values(sweep.spec)
                if new != self.values:
                    print(f"limits: {describe(self.values, new)}", flush=True)
                self.values = new
        return self.values

    def __getstate__(self):
        return {**self.__dict__, "_read_at": 0.0}


def describe(old: tuple, new: tuple) -> str:
    names = ("num_samples", "max_concurrent_trials", "time_budget_s")
    return ", ".join(f"{n} {a} -> {b}" for n, a, b in zip(names, old, new, strict=True) if a != b)


class LiveSearch(SearchGenerator):
    """A SearchGenerator whose trial count and concurrency follow the store. Past the count
    it creates no trial but is not finished while trials run: a raised count still adds
    trials then. A trial id it created and has not seen complete counts as running."""

    def __init__(self, searcher, limits: LiveLimits):
        super().__init__(searcher)
        self.limits = limits
        self._running: set[str] = set()
        # A searcher that limits its own concurrency (BOHB: its trials paused by HyperBand
        # don't count) is told the limit, as Tune's ConcurrencyLimiter tells it.
        self._max_concurrent = limits.values[1]
        self._searcher_limits = bool(searcher.set_max_concurrency(self._max_concurrent))

    def is_finished(self) -> bool:
        return self._finished or self._counter >= self.limits.now()[0]

    def _at_limit(self, max_concurrent: int) -> bool:
        if not self._searcher_limits:
            return len(self._running) >= max_concurrent
        if max_concurrent != self._max_concurrent:
            self._max_concurrent = max_concurrent
            self.searcher.set_max_concurrency(max_concurrent)
        return False  # the searcher answers None itself at its limit

    def create_trial_if_possible(self, experiment_spec):
        num_samples, max_concurrent, _ = self.limits.now()
        if self._counter >= num_samples or self._at_limit(max_concurrent):
            return None
        trial = super().create_trial_if_possible(experiment_spec)
        if trial is not None:
            self._running.add(trial.trial_id)
        return trial

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        self._running.discard(trial_id)
        super().on_trial_complete(trial_id, result=result, error=error)
