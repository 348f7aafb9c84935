"""Trials side by side (GET /trials/compare, `cifar-sweeps compare`): the configurations as a
diff, only what differs; the scores; the curves; 2 to 20 trials, a missing one named."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.cli import main
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs


def _epoch(e: int, val: float) -> dict:
    return {"epoch": e, "train_loss": 1.0 / e, "train_acc": val, "val_loss": 1.0, "val_acc": val, "lr": 0.1 / e,
            "seconds": 1.0, "images_per_s": 100.0}  # fmt: skip


@pytest.fixture
def three(tmp_path):
    settings = Settings(results_dir=tmp_path, cache_ttl_s=0)
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep({"name": "c"}, "synthetic:100", "v")
    configs = [
        {"model": "mlp", "lr": 0.01, "batch_size": 64, "epochs": 2},
        {"model": "mlp", "lr": 0.05, "batch_size": 64, "epochs": 2},
        {"model": "mlp", "lr": 0.05, "batch_size": 128, "epochs": 2, "momentum": 0.8},
    ]
    ids = []
    for i, cfg in enumerate(configs):
        tid = lifecycle.trial_started(store, sweep.id, f"t{i}", cfg, 2)
        for e in (1, 2):
            store.trial_epoch(tid, _epoch(e, 0.3 + 0.1 * i + 0.05 * e))
        ids.append(tid)
    return settings, store, ids


def test_the_api_compares_trials_as_a_diff_with_scores_and_curves(three):
    settings, store, ids = three
    client = TestClient(create_app(settings, FakeJobs(store)))
    r = client.get("/trials/compare", params={"ids": ",".join(ids)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [t["id"] for t in body["trials"]] == ids
    assert body["differ"] == {"batch_size": [64, 64, 128], "lr": [0.01, 0.05, 0.05], "momentum": [None, None, 0.8]}
    assert body["same"] == {"epochs": 2, "model": "mlp"}
    assert [t["scores"]["val_acc"] for t in body["trials"]] == pytest.approx([0.4, 0.5, 0.6])
    assert [p["val_acc"] for p in body["curves"][ids[2]]] == pytest.approx([0.55, 0.6])
    again = client.get("/trials/compare", params=[("ids", ids[0]), ("ids", ids[1])])  # repeated keys work too
    assert again.status_code == 200 and again.json()["differ"] == {"lr": [0.01, 0.05]}


def test_compare_refuses_one_trial_too_many_and_names_a_missing_one(three):
    settings, store, ids = three
    client = TestClient(create_app(settings, FakeJobs(store)))
    r = client.get("/trials/compare", params={"ids": ids[0]})
    assert r.status_code == 422 and "compare 2 to 20 trials, got 1" in r.json()["detail"]
    r = client.get("/trials/compare", params={"ids": ",".join([*ids, "sw-x-nope"])})
    assert r.status_code == 404 and "sw-x-nope" in r.json()["detail"]
    r = client.get("/trials/compare", params={"ids": ",".join(f"t{i}" for i in range(21))})
    assert r.status_code == 422


def test_the_cli_prints_the_diff(three, capsys):
    settings, _, ids = three
    assert main(["compare", *ids, "--results-dir", str(settings.results_dir)]) == 0
    out = capsys.readouterr().out
    assert "batch_size" in out and "momentum" in out and "the same in all: epochs=2, model=mlp" in out
    assert main(["compare", ids[0], ids[1], "--results-dir", str(settings.results_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["differ"] == {"lr": [0.01, 0.05]}
