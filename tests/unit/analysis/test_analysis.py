"""Parameter importance and best regions, from trials written to the store directly: a
metric that depends on lr alone (with noise) must be explained by lr; too few trials are a
409 with a message, not a number."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.cli import main
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.schema import parse_spec
from tests.helpers.importance import add_trial, stored_sweep
from tests.helpers.jobs import FakeJobs


def test_lr_gets_the_importance(tmp_path, capsys):
    settings, store, sweep = stored_sweep(tmp_path, 40)
    client = TestClient(create_app(settings, FakeJobs(store)))
    r = client.get(f"/sweeps/{sweep.id}/importance")
    assert r.status_code == 200, r.text
    body = r.json()
    got = {p["name"]: p for p in body["params"]}
    assert body["trials_used"] == 40 and body["metric"] == "val_acc"
    assert got["lr"]["importance"] >= 0.7, got
    assert got["batch_size"]["importance"] < 0.2 and got["momentum"]["importance"] < 0.2, got
    assert sum(p["importance"] for p in body["params"]) == pytest.approx(1.0, abs=1e-6)
    # The best region of lr brackets the optimum at 0.01, on its log scale.
    assert got["lr"]["log"] and got["lr"]["best_low"] < 0.01 < got["lr"]["best_high"] < 0.05
    assert set(got["batch_size"]["best_values"]) <= {32, 64, 128}
    assert main(["analyze", sweep.id, "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[0] == "lr"  # the table's first row is the most important


def test_repeats_count_once_at_their_mean(tmp_path):
    """A configuration trained over three seeds is one point of fANOVA's fit, at its mean."""
    settings, store, sweep = stored_sweep(tmp_path, 6)
    first = store.trials(sweep.id)[0]
    for seed, acc in ((1, 0.1), (2, 0.2)):  # repeats of the first trial: same config, other seeds
        tid = lifecycle.trial_started(store, sweep.id, f"r{seed}", {**first.config, "seed": seed}, 1, first.id)
        store.trial_epoch(
            tid,
            {
                "epoch": 1,
                "train_loss": 1.0,
                "train_acc": acc,
                "val_loss": 1 - acc,
                "val_acc": acc,
                "lr": first.config["lr"],
                "seconds": 1.0,
                "images_per_s": 1.0,
            },
        )
        lifecycle.trial_ended(store, tid, "terminated")
    client = TestClient(create_app(settings, FakeJobs(store)))
    body = client.get(f"/sweeps/{sweep.id}/importance").json()
    assert body["trials_finished"] == 6 and body["trials_used"] == 6  # 8 trials, 6 configurations


def test_too_few_trials_is_a_409(tmp_path, capsys):
    settings, store, sweep = stored_sweep(tmp_path, 3)
    client = TestClient(create_app(settings, FakeJobs(store)))
    r = client.get(f"/sweeps/{sweep.id}/importance")
    assert r.status_code == 409
    assert r.json()["detail"] == (
        f"sweep {sweep.id} has 3 finished trial(s) with a val_acc; parameter importance needs at least 5"
    )
    assert main(["analyze", sweep.id, "--results-dir", str(tmp_path)]) == 1
    assert "needs at least 5" in capsys.readouterr().err
    assert client.get("/sweeps/sw-nope/importance").status_code == 404


def test_trials_that_all_scored_the_same_are_a_409_not_a_crash(tmp_path, capsys):
    """fANOVA raises on zero variance (every trial at chance on a tiny data set): the answer
    names it instead."""
    settings, store, sweep = stored_sweep(tmp_path, 0)
    rng = random.Random(1)
    for i in range(6):
        add_trial(
            store,
            sweep.id,
            f"t{i}",
            {"model": "mlp", "epochs": 1, "lr": 10 ** rng.uniform(-4, -1), "batch_size": 32, "momentum": 0.9},
            0.1,
        )
    client = TestClient(create_app(settings, FakeJobs(store)))
    r = client.get(f"/sweeps/{sweep.id}/importance")
    assert r.status_code == 409
    assert r.json()["detail"] == (
        f"sweep {sweep.id}'s 6 finished trials all scored val_acc 0.1: no parameter explains a difference"
    )
    assert main(["analyze", sweep.id, "--results-dir", str(tmp_path)]) == 1
    assert "no parameter explains a difference" in capsys.readouterr().err


def test_a_trial_outside_the_space_is_skipped_and_counted(tmp_path):
    settings, store, sweep = stored_sweep(tmp_path, 12)
    # lr 0.3 is past the space's high (0.1): a spec edited after the fact, or an imported trial.
    add_trial(
        store, sweep.id, "outside", {"model": "mlp", "epochs": 1, "lr": 0.3068, "batch_size": 64, "momentum": 0.9}, 0.5
    )
    add_trial(
        store,
        sweep.id,
        "unknown-choice",
        {"model": "mlp", "epochs": 1, "lr": 0.01, "batch_size": 48, "momentum": 0.9},
        0.5,
    )
    r = TestClient(create_app(settings, FakeJobs(store))).get(f"/sweeps/{sweep.id}/importance")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["trials_outside_space"] == 2 and body["trials_used"] == 12 and body["trials_finished"] == 14


def test_importance_is_sampled_cached_per_data_version_and_one_at_a_time(tmp_path, monkeypatch):
    from cifar_sweeps.analysis import importance

    settings, store, sweep = stored_sweep(tmp_path, importance.MAX_TRIALS + 60)
    settings = settings.model_copy(update={"cache_ttl_s": 0})  # this cache, not the HTTP one
    client = TestClient(create_app(settings, FakeJobs(store)))
    calls = []
    real = importance._compute  # the computation, in the worker process
    monkeypatch.setattr(importance, "_compute", lambda *a: calls.append(1) or real(*a))
    body = client.get(f"/sweeps/{sweep.id}/importance").json()
    assert body["sampled"] and body["trials_used"] == importance.MAX_TRIALS
    assert body["trials_finished"] == importance.MAX_TRIALS + 60
    for junk in ("", "?x=1", "?nocache=2&y=3"):  # any query: the same computation, not a new one
        assert client.get(f"/sweeps/{sweep.id}/importance{junk}").json() == body
    assert len(calls) == 1
    add_trial(
        store, sweep.id, "new", {"model": "mlp", "epochs": 1, "lr": 0.01, "batch_size": 64, "momentum": 0.9}, 0.8
    )  # the sweep's data version moves on
    client.get(f"/sweeps/{sweep.id}/importance")
    assert len(calls) == 2
    with importance._busy:  # another computation under way: no thread waits on it
        r = client.get(f"/sweeps/{sweep.id}/importance?x=9")
    assert r.status_code == 200  # this one is cached
    other = stored_sweep(tmp_path / "o", 6)[2]
    store_other = get_store(Settings(results_dir=tmp_path / "o").resolved_store_url())
    client_other = TestClient(create_app(Settings(results_dir=tmp_path / "o"), FakeJobs(store_other)))
    with importance._busy:
        r = client_other.get(f"/sweeps/{other.id}/importance")
    assert r.status_code == 503 and "try again" in r.json()["detail"]


def test_analysis_judges_the_space_the_sampler_drew_from():
    """One mapping (spaces.py) for the searcher and the analysis: an integral qloguniform
    stays an int on a log scale, a quniform keeps its step."""
    from optuna.distributions import FloatDistribution, IntDistribution

    from cifar_sweeps.analysis.importance import distribution
    from cifar_sweeps.sweepspec.spaces import optuna_distribution

    spec = parse_spec(
        {
            "name": "s",
            "search": {"algorithm": "optuna"},
            "fixed": {"model": "mlp"},
            "params": {
                "epochs": {"type": "qloguniform", "low": 2, "high": 64, "q": 1},
                "momentum": {"type": "quniform", "low": 0.5, "high": 0.95, "q": 0.05},
                "batch_size": {"type": "choice", "values": [32, 64]},
            },
        }
    )
    for p in spec.params.values():
        assert distribution(p) == optuna_distribution(p)
    assert distribution(spec.params["epochs"]) == IntDistribution(2, 64, log=True)
    assert distribution(spec.params["momentum"]) == FloatDistribution(0.5, 0.95, step=0.05)
