"""The time left of a running sweep (analysis/progress.py), by hand-computed cases."""

from __future__ import annotations

import pytest

from cifar_sweeps.analysis.progress import TrialPace, estimate, total_trials

TRIALS = [
    TrialPace("a", "terminated", 4, 4, 10.0),
    TrialPace("b", "early_stopped", 4, 4, 10.0),
    TrialPace("c", "running", 2, 4, 5.0),
]


def test_the_epochs_left_at_the_pace_so_far():
    e = estimate({"num_samples": 5, "max_concurrent_trials": 2}, TRIALS, active=True)
    assert (e.trials_total, e.trials_done, e.epochs_done) == (5, 2, 10)
    assert e.seconds_per_epoch == pytest.approx(25 / 10)
    # c's 2 epochs, and 2 unstarted trials at the mean budget of 4; one trial runs now
    assert e.eta_s == pytest.approx((2 + 2 * 4) * 2.5)
    assert [t.id for t in e.running] == ["c"]


def test_a_budget_ends_it_first_and_an_ended_sweep_has_no_eta():
    spec = {"num_samples": 5, "budget": {"epochs": 12}}
    assert estimate(spec, TRIALS, active=True).eta_s == pytest.approx(2 * 2.5)
    assert estimate(spec, TRIALS, active=False).eta_s is None
    assert estimate({"num_samples": 2}, [], active=True).eta_s is None  # no pace yet


def test_a_grid_counts_its_points_times_num_samples():
    grid = {"num_samples": 2, "search": {"algorithm": "grid"}, "params": {"m": {"type": "choice", "values": [1, 2, 3]}}}
    assert total_trials(grid) == 6
    assert total_trials({"num_samples": 3, "params": {"m": {"type": "choice", "values": [1, 2]}}}) == 3


def test_the_time_left_never_exceeds_what_the_time_budget_has_left():
    spec = {"num_samples": 50, "max_concurrent_trials": 1, "time_budget_s": 600}
    e = estimate(spec, TRIALS, active=True, elapsed_s=550.0)
    assert e.eta_s == pytest.approx(50.0)  # not the 48 trials' epochs at the pace so far
    assert estimate(spec, TRIALS, active=True, elapsed_s=700.0).eta_s == 0.0
    assert estimate(spec, TRIALS, active=True).eta_s == pytest.approx((2 + 47 * 4) * 2.5)  # no start: no cap
