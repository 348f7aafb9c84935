"""Constraints on the trials' cost metrics (`"constraints": ["params <= 2e6"]`): parsed and
refused with the field named; Optuna's sampler reads each trial's violations; the refit
takes the best feasible trial, not the best; the leaderboard marks each trial."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.errors import SpecError
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.constraints import Constraint, feasible, parse_all
from cifar_sweeps.sweepspec.schema import parse_spec
from cifar_sweeps.tuning.refit import plan_refit
from tests.helpers.jobs import FakeJobs

BASE = {
    "name": "c",
    "search": {"algorithm": "optuna", "n_initial_points": 2},
    "fixed": {"model": "mlp", "epochs": 2},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


def test_constraints_parse_and_bad_ones_are_refused_naming_the_field():
    assert parse_all(["params <= 2e6", "latency_ms<0.5"]) == [
        Constraint("params", "<=", 2e6),
        Constraint("latency_ms", "<", 0.5),
    ]
    assert parse_spec({**BASE, "constraints": ["params <= 2e6"]}).constraints == ["params <= 2e6"]
    for bad, words in (
        (["params = 2"], "constraints[0]: 'params = 2' is no constraint"),
        (["params <= 2", "accuracy >= 0.9"], "constraints[1]: 'accuracy' is no stored metric"),
    ):
        with pytest.raises(SpecError, match=words.replace("[", r"\[").replace("]", r"\]")):
            parse_spec({**BASE, "constraints": bad})
    with pytest.raises(SpecError, match="constraints: only Optuna's samplers take constraints"):
        parse_spec({**BASE, "search": {"algorithm": "hyperopt"}, "constraints": ["params <= 2e6"]})


def test_optunas_sampler_reads_each_trials_violations():
    from cifar_sweeps.tuning.searchers import CONSTRAINTS_ATTR, make_search

    search = make_search(parse_spec({**BASE, "constraints": ["params <= 1000"]}))
    search.set_search_properties("val_acc", "max", {})
    for tid, params in (("a", 500.0), ("b", 5000.0)):
        assert search.suggest(tid) is not None
        search.on_trial_complete(tid, {"val_acc": 0.5, "params": params})
    trials = {t.number: t for t in search._ot_study.trials}
    assert trials[0].user_attrs[CONSTRAINTS_ATTR] == [-500.0] and trials[1].user_attrs[CONSTRAINTS_ATTR] == [4000.0]
    assert trials[1].system_attrs["constraints"] == (4000.0,)  # what TPE steers away from


class Row:
    """What the refit reads of a stored trial."""

    def __init__(self, tid, val, params, status="terminated"):
        self.id, self.val_acc, self.params, self.status = tid, val, params, status
        self.config, self.best_epoch, self.refit_of, self.repeat_of = {"lr": val}, 2, None, None
        self.latency_ms = self.latency_ms_batch = self.seconds = self.seconds_to_best = None
        self.test_acc, self.epochs, self.sweep_id = None, 2, "sw-x"


def test_the_refit_takes_the_best_feasible_trial():
    rows = [Row("big", 0.9, 5e6), Row("small", 0.8, 1e6)]
    assert plan_refit(rows, "val_acc", "max").source_id == "big"
    bounds = parse_all(["params <= 2e6"])
    assert plan_refit(rows, "val_acc", "max", bounds).source_id == "small"
    assert plan_refit([Row("big", 0.9, 5e6)], "val_acc", "max", bounds) is None  # nothing feasible: no refit
    assert not feasible(bounds, {"params": None})  # a cost not measured can't be shown to keep the bound


def test_the_leaderboard_marks_each_trial_of_a_constrained_sweep(tmp_path):
    settings = Settings(results_dir=tmp_path, cache_ttl_s=0)
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep({**BASE, "constraints": ["params <= 2e6"]}, "synthetic:100", "v")
    plain = store.create_sweep(BASE, "synthetic:100", "v")
    for sid, tid, params in ((sweep.id, "t1", 5e6), (sweep.id, "t2", 1e6), (plain.id, "t3", 5e6)):
        trial = lifecycle.trial_started(store, sid, tid, {"model": "mlp"}, 2)
        store.trial_epoch(trial, {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5,
                                  "lr": 0.1, "seconds": 1.0, "images_per_s": 10.0, "params": params})  # fmt: skip
    items = TestClient(create_app(settings, FakeJobs(store))).get("/leaderboard").json()["items"]
    marks = {i["trial_id"].rsplit("-", 1)[-1]: i["feasible"] for i in items}
    assert marks == {"t1": False, "t2": True, "t3": None}
