"""The one registry of metrics (sweepspec/metrics.py) is what the spec, the store, the API's
queries and the CLI's flags take."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from cifar_sweeps.cli import build_parser
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import SORTABLE
from cifar_sweeps.store.tables import Trial
from cifar_sweeps.sweepspec.metrics import METRICS, STORED, ObjectiveMetric, SearchMetric, StoredMetric, stored_name
from cifar_sweeps.sweepspec.schema import Objective, SweepSpec
from tests.helpers.paths import REPO


def test_every_metric_reads_a_column_of_the_trials_table():
    assert {m.column for m in METRICS.values()} <= set(Trial.__table__.columns.keys())
    assert set(SORTABLE) == {column for column, _ in STORED.values()}


def test_val_acc_has_three_names_for_three_meanings():
    epoch, best = METRICS["val_acc"], METRICS["best_val_acc"]
    assert (epoch.scored_as, best.scored_as) == ("epoch", "best") and epoch.column == best.column == "val_acc"
    assert stored_name("val_acc") == "best_val_acc" and stored_name("params") == "params"
    assert "val_acc" not in STORED  # the store keeps the best epoch's, not the last one's


def test_the_spec_the_api_and_the_cli_take_the_registrys_names(tmp_path):
    assert set(typing.get_args(SearchMetric)) == {"val_acc", "best_val_acc", "val_loss"}
    assert set(typing.get_args(ObjectiveMetric)) == {k for k, m in METRICS.items() if m.objective}
    assert set(typing.get_args(StoredMetric)) == set(STORED)
    lr = {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}}
    SweepSpec(metric="val_loss", mode="min", params=lr)
    with pytest.raises(ValidationError, match="metric"):
        SweepSpec(metric="test_acc", params=lr)  # stored, but a trial doesn't report it each epoch
    with pytest.raises(ValidationError, match="metric"):
        Objective(metric="seconds_to_best", mode="min")
    params = create_app(Settings(results_dir=tmp_path)).openapi()["paths"]["/leaderboard"]["get"]["parameters"]
    assert set(next(p for p in params if p["name"] == "sort")["schema"]["enum"]) == set(STORED)
    flags = build_parser().parse_args(["leaderboard", "--sort", "seconds_to_best"])
    assert flags.sort == "seconds_to_best"


def test_an_epoch_is_one_record_for_the_trainer_the_store_and_the_api():
    from cifar_sweeps.service.schemas import EpochOut
    from cifar_sweeps.store.tables import Epoch
    from cifar_sweeps.sweepspec.epoch import MEASURED, EpochRecord
    from cifar_sweeps.training.train import EpochMetrics

    assert set(MEASURED) <= set(Epoch.__table__.columns.keys())
    assert issubclass(EpochMetrics, EpochRecord) and issubclass(EpochOut, EpochRecord)


def test_the_page_draws_the_registrys_metrics(tmp_path):
    from fastapi.testclient import TestClient

    metrics = TestClient(create_app(Settings(results_dir=tmp_path))).get("/config.json").json()["metrics"]
    assert [m["name"] for m in metrics] == list(STORED)
    logs = {m["name"] for m in metrics if m["log"]}
    assert logs == {"params", "latency_ms", "latency_ms_batch", "train_s", "seconds_to_best"}
    page = (REPO / "cifar_sweeps" / "service" / "web" / "app.js").read_text()
    assert "seconds_to_best" not in page  # the page names no metric of its own
