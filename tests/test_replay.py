"""The replay (benchmarks/replay.py) against what can be computed without it: random search
with full-length trials, one at a time, is k independent draws from the table, so its
expected best after k trials is an order statistic of the table's values; and the mapping
of a suggestion to the nearest tabulated configuration."""

from __future__ import annotations

import math
import statistics

import pytest

from benchmarks.replay import METHODS, REPORT, Table, at, make_spec, nearest, replay

N = 8  # configurations, one per value of a choice: random search draws each with probability 1/N
VALS = [0.30, 0.42, 0.45, 0.51, 0.55, 0.60, 0.71, 0.74]


def _table() -> Table:
    lrs = [0.01 * (i + 1) for i in range(N)]
    space = {"fixed": {"model": "mlp", "epochs": 1}, "params": {"lr": {"type": "choice", "values": lrs}}}
    configs = {i: {"lr": lr} for i, lr in enumerate(lrs)}
    curves = {(i, 0): [(VALS[i], VALS[i] - 0.01, 1.0)] for i in range(N)}
    return Table(space, configs, curves, 1)


def expected_best(k: int) -> float:
    """E[max of k draws with replacement from VALS]: P(max <= v_(j)) = (j / N) ** k."""
    v = sorted(VALS)
    return sum(v[j - 1] * ((j / N) ** k - ((j - 1) / N) ** k) for j in range(1, N + 1))


@pytest.mark.parametrize("k", [1, 3, 10])
def test_random_search_in_full_matches_the_order_statistic(k):
    table, seeds = _table(), 300
    spec = make_spec(table, METHODS[REPORT], 0, num_samples=k)
    bests = []
    for s in range(seeds):
        curve = replay(table, spec.model_copy(update={"search": spec.search.model_copy(update={"seed": s})}), s, 1e9)
        assert curve[-1][0] <= k  # one second an epoch, one trial at a time: k trials take k s
        bests.append(at(curve, 1e9)[0])
    se = statistics.stdev(bests) / seeds**0.5 if k > 1 else statistics.pstdev(VALS) / seeds**0.5
    assert abs(statistics.fmean(bests) - expected_best(k)) < 4 * se + 1e-9, (statistics.fmean(bests), expected_best(k))


def test_a_budget_cuts_the_anytime_curve():
    table = _table()
    spec = make_spec(table, METHODS[REPORT], 0, num_samples=10)
    curve = replay(table, spec, 0, 3.5)
    assert all(t <= 3.5 for t, _, _ in curve)
    assert math.isnan(at(curve, 0.5)[0]) and not math.isnan(at(curve, 1.0)[0])  # the first result ends at 1 s


def test_a_suggestion_maps_to_the_nearest_configuration():
    space = {
        "params": {
            "lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1},
            "batch_size": {"type": "choice", "values": [32, 64]},
        }
    }
    table = Table(
        space,
        {0: {"lr": 1e-3, "batch_size": 32}, 1: {"lr": 1e-2, "batch_size": 64}, 2: {"lr": 1e-1, "batch_size": 32}},
        {},
        1,
    )
    assert nearest(table, {"lr": 0.0012, "batch_size": 32}) == 0
    assert nearest(table, {"lr": 0.012, "batch_size": 64}) == 1
    assert nearest(table, {"lr": 0.012, "batch_size": 32}) in (0, 2)  # a choice weighs as the whole log range
    assert nearest(table, {"lr": 0.05, "batch_size": 32}) == 2
