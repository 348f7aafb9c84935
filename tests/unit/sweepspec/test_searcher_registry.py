"""The searchers' registry (sweepspec/searchers.py) is the one list: the spec's field, its
checks, the tuning factories and the page's choices are derived from its entries."""

from __future__ import annotations

import typing

import pytest

from cifar_sweeps.errors import SpecError
from cifar_sweeps.sweepspec import searchers
from cifar_sweeps.sweepspec.schema import SearchConfig, parse_spec
from cifar_sweeps.sweepspec.searchers import SEARCHERS

BASE = {
    "name": "reg",
    "num_samples": 2,
    "fixed": {"model": "mlp", "epochs": 1},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


def test_the_specs_field_and_the_factories_are_the_registrys_entries():
    from cifar_sweeps.tuning.searchers import FACTORIES

    assert typing.get_args(SearchConfig.model_fields["algorithm"].annotation) == tuple(SEARCHERS)
    assert set(FACTORIES) == set(SEARCHERS)
    with pytest.raises(SpecError, match="search.algorithm"):
        parse_spec({**BASE, "search": {"algorithm": "cmaes"}})


def test_each_capability_check_reads_the_registry(monkeypatch):
    """Turn warm start off for hyperopt in the registry: the spec check refuses it and names
    the one left; nothing else had to change."""
    warm = {**BASE, "search": {"algorithm": "hyperopt", "warm_start": {"sweeps": ["sw-x"]}}}
    assert searchers.names("warm_start") == "hyperopt or optuna"
    parse_spec(warm)  # today hyperopt learns from earlier sweeps
    monkeypatch.setitem(
        SEARCHERS, "hyperopt", SEARCHERS["hyperopt"].__class__(**{**vars(SEARCHERS["hyperopt"]), "warm_start": False})
    )
    with pytest.raises(SpecError, match="search.warm_start: needs search.algorithm optuna"):
        parse_spec(warm)
    with pytest.raises(SpecError, match="several objectives need optuna"):
        parse_spec(
            {**BASE, "objectives": [{"metric": "best_val_acc", "mode": "max"}, {"metric": "params", "mode": "min"}]}
        )


def test_the_page_reads_what_each_searcher_can_do_from_the_api(tmp_path):
    from fastapi.testclient import TestClient

    from cifar_sweeps.service.api import create_app
    from cifar_sweeps.settings import Settings
    from cifar_sweeps.store.queries import get_store
    from tests.helpers.jobs import FakeJobs

    settings = Settings(results_dir=tmp_path, data="synthetic:100")
    with TestClient(create_app(settings, FakeJobs(get_store(settings.resolved_store_url())))) as c:
        cfg = c.get("/config.json").json()
    assert [s["name"] for s in cfg["searchers"]] == list(SEARCHERS)
    assert {s["name"] for s in cfg["searchers"] if s["warm_start"]} == {"hyperopt", "optuna"}
    assert cfg["default_searcher"] == SearchConfig().algorithm


def test_the_schedulers_field_checks_plan_and_factories_are_the_registrys_entries(monkeypatch):
    from cifar_sweeps.analysis.plan import WHOLE_RUNS
    from cifar_sweeps.sweepspec.schedulers import SCHEDULERS, Scheduler
    from cifar_sweeps.sweepspec.schema import SchedulerConfig
    from cifar_sweeps.tuning.schedulers import FACTORIES, decision_epochs

    assert typing.get_args(SchedulerConfig.model_fields["type"].annotation) == tuple(SCHEDULERS)
    assert set(FACTORIES) == set(SCHEDULERS)
    assert set(WHOLE_RUNS) == {"fifo", "pbt"}  # the two that stop no trial
    assert parse_spec({**BASE, "search": {"algorithm": "bohb"}}).scheduler.type == "hyperband"  # its pair
    two = {**BASE, "objectives": [{"metric": "best_val_acc", "mode": "max"}, {"metric": "params", "mode": "min"}]}
    two["search"] = {"algorithm": "optuna"}
    with pytest.raises(SpecError, match="scheduler.type: asha stops trials by one metric"):
        parse_spec({**two, "scheduler": {"type": "asha"}})
    parse_spec({**two, "scheduler": {"type": "fifo"}})
    # asha said to stop none: a trial then tests at no rung
    monkeypatch.setitem(SCHEDULERS, "asha", Scheduler("asha", "", stops_trials=False))
    assert decision_epochs(parse_spec({**BASE, "scheduler": {"type": "asha"}})) == frozenset()
