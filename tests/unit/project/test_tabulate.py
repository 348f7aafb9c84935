"""The tabulation's sample (benchmarks/tabulate.py): the same configurations for the same
seed, every value inside its parameter's range and type, and the space covered evenly."""

from __future__ import annotations

import math

import pytest

from benchmarks.tabulate import TASKS, sample, to_value


@pytest.mark.parametrize("task", list(TASKS))
def test_the_sample_is_the_same_every_time_and_stays_in_the_space(task):
    params = TASKS[task]["params"]
    configs = sample(params, 64, seed=0)
    assert configs == sample(params, 64, seed=0) and configs != sample(params, 64, seed=1)
    for c in configs:
        for name, p in params.items():
            v = c[name]
            if p["type"] == "choice":
                assert v in p["values"]
            else:
                assert p["low"] <= v <= p["high"], (name, v)
            if p["type"] == "quniform":
                assert isinstance(v, int)


def test_each_axis_maps_the_unit_interval_onto_its_scale():
    log = {"type": "loguniform", "low": 1e-4, "high": 1e-2}
    assert to_value(log, 0.0) == pytest.approx(1e-4) and to_value(log, 0.5) == pytest.approx(1e-3)
    q = {"type": "quniform", "low": 2, "high": 10, "q": 1}
    assert [to_value(q, u) for u in (0.0, 0.5, 0.999)] == [2, 6, 10]
    assert [to_value({"type": "choice", "values": [32, 64, 128]}, u) for u in (0.0, 0.4, 0.99)] == [32, 64, 128]


def test_the_sample_covers_a_log_axis_evenly():
    lr = {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}}
    logs = sorted(math.log10(c["lr"]) for c in sample(lr, 64))
    low_half = sum(x < -2 for x in logs)
    assert low_half == 32  # a balanced Sobol sample: exactly half below the log midpoint


def test_a_second_sitting_on_the_same_table_is_refused_naming_the_first(tmp_path):
    import os

    from benchmarks.tabulate import hold_lock

    lock = tmp_path / "airbench.lock"
    first = hold_lock(lock)
    with pytest.raises(SystemExit, match=rf"airbench.csv is being written by pid {os.getpid()}"):
        hold_lock(lock)
    first.close()  # the first sitting ends: the next may start
    hold_lock(lock).close()
