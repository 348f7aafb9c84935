"""Rankings over seeds on fixed numbers: the t-interval, Welch's test, a group of one run,
the group key, and the repeat plan (stable across replans)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from cifar_sweeps.analysis.ranking import ALPHA, group_key, group_trials, plan_repeats, summarize, welch_p


def _trial(tid, acc, seed=0, lr=0.1, sweep="sw-a", status="terminated", repeat_of=None, test=None, tune=None):
    cfg = {"model": "mlp", "lr": lr, "seed": seed, "epochs": 3}
    return SimpleNamespace(
        id=tid,
        tune_trial_id=tune or tid,
        sweep_id=sweep,
        config=cfg,
        status=status,
        val_acc=acc,
        val_loss=1 - acc,
        test_acc=test,
        repeat_of=repeat_of,
        model="mlp",
    )


def test_the_95_interval_of_three_runs():
    s = summarize([0.80, 0.82, 0.84])
    half = 4.302652729749462 * 0.02 / math.sqrt(3)  # t(0.975, 2 df) * std / sqrt(n)
    assert s.n == 3 and s.mean == pytest.approx(0.82) and s.std == pytest.approx(0.02)
    assert (s.low, s.high) == (pytest.approx(0.82 - half), pytest.approx(0.82 + half))


def test_one_run_has_no_interval_and_says_so():
    s = summarize([0.8])
    assert (s.n, s.mean, s.std, s.low, s.high) == (1, 0.8, None, None, None)
    (g,) = group_trials([_trial("t1", 0.8)])
    assert g.metric.n == 1 and g.note.startswith("one run: no interval")
    assert summarize([]).n == 0


def test_welch_on_fixed_numbers():
    # t = 8.52 on 2.94 degrees of freedom (Welch-Satterthwaite): p = 0.00366
    assert welch_p([0.80, 0.82, 0.84], [0.70, 0.71, 0.72]) == pytest.approx(0.0036599556, rel=1e-6)
    assert welch_p([0.80, 0.82, 0.84], [0.79, 0.815, 0.83]) == pytest.approx(0.6383983611, rel=1e-6)
    assert welch_p([0.8], [0.7, 0.71]) is None  # one run on a side: no test
    assert welch_p([0.8, 0.8], [0.8, 0.8]) == 1.0 and welch_p([0.8, 0.8], [0.7, 0.7]) == 0.0


def test_groups_are_sorted_by_mean_and_compared_with_the_next():
    trials = [
        _trial("a0", 0.80, 0, lr=0.1, test=0.79),
        _trial("a1", 0.82, 1, lr=0.1, test=0.81),
        _trial("a2", 0.84, 2, lr=0.1, test=0.83),
        _trial("b0", 0.79, 0, lr=0.2),
        _trial("b1", 0.815, 1, lr=0.2),
        _trial("b2", 0.83, 2, lr=0.2),
        _trial("c0", 0.70, 0, lr=0.3),
        _trial("c1", 0.71, 1, lr=0.3),
        _trial("c2", 0.72, 2, lr=0.3),
        _trial("d0", 0.95, 0, lr=0.4, status="errored"),  # errored: never grouped
        _trial("e0", 0.60, 0, lr=0.1, sweep="sw-b"),  # the same config in another sweep: its own group
    ]
    groups = group_trials(trials)
    assert [g.config["lr"] for g in groups] == [0.1, 0.2, 0.3, 0.1]
    assert [g.sweep_id for g in groups] == ["sw-a", "sw-a", "sw-a", "sw-b"]
    assert [len(g.trials) for g in groups] == [3, 3, 3, 1]
    assert groups[0].p_next == pytest.approx(0.6383983611, rel=1e-6) and groups[0].distinct_from_next is False
    assert "not distinguishable" in groups[0].note
    assert groups[1].p_next < ALPHA and groups[1].distinct_from_next is True and "better than" in groups[1].note
    assert groups[2].p_next is None and groups[2].distinct_from_next is None  # the next has one run
    assert groups[3].note.endswith("the last row")
    assert groups[0].test.mean == pytest.approx(0.81) and groups[0].test.n == 3
    assert "seed" not in groups[0].config


def test_the_group_key_ignores_the_seed_and_the_runner_keys_only():
    base = {"model": "mlp", "lr": 0.1}
    assert group_key("s", {**base, "seed": 1, "threads": 2}) == group_key("s", {**base, "seed": 7})
    assert group_key("s", base) != group_key("s", {**base, "lr": 0.2}) != group_key("t", base)


def test_the_repeat_plan_is_stable_and_skips_finished_repeats():
    search = [
        _trial("sw-a-t1", 0.8, lr=0.1, tune="t1"),
        _trial("sw-a-t2", 0.7, lr=0.2, tune="t2"),
        _trial("sw-a-t3", 0.6, lr=0.3, tune="t3"),
    ]
    plan = plan_repeats(search, top=2, seeds=3, metric="val_acc", mode="max")
    assert [(r.source_id, r.tune_trial_id, r.config["seed"]) for r in plan] == [
        ("sw-a-t1", "t1-s1", 1),
        ("sw-a-t1", "t1-s2", 2),
        ("sw-a-t2", "t2-s1", 1),
        ("sw-a-t2", "t2-s2", 2),
    ]
    # One repeat finished, one errored (a killed driver): the replan names the same runs, less the finished one.
    done = _trial("sw-a-t1-s1", 0.81, seed=1, lr=0.1, repeat_of="sw-a-t1", tune="t1-s1")
    failed = _trial("sw-a-t1-s2", 0.5, seed=2, lr=0.1, repeat_of="sw-a-t1", tune="t1-s2", status="errored")
    again = plan_repeats([*search, done, failed], top=2, seeds=3, metric="val_acc", mode="max")
    assert [r.tune_trial_id for r in again] == ["t1-s2", "t2-s1", "t2-s2"]
    # A repeat that scores better never changes which configurations the search ranked best.
    better = _trial("sw-a-t3-s1", 0.99, seed=1, lr=0.3, repeat_of="sw-a-t3", tune="t3-s1")
    assert {r.source_id for r in plan_repeats([*search, better], 2, 3, "val_acc", "max")} == {"sw-a-t1", "sw-a-t2"}
