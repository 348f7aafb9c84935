"""Warm start: the finished trials of earlier sweeps go to the new sweep's TPE as already
evaluated (observed in the searcher's hyperopt history and in sweeps.warm_trials), only
those that fit the new space, none of them trained again; unknown or unrelated sweeps are
a 422 at submit that stores nothing."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.analysis.warm import warm_points
from cifar_sweeps.errors import SpecError
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.schema import parse_spec
from tests.helpers.jobs import FakeJobs
from tests.helpers.specs import AUTH, warm_spec
from tests.helpers.specs import LR_PARAM as LR


def _old_sweep(store, trials: list[tuple[dict, str, list[float]]], params=None) -> str:
    """A finished sweep written to the store: (config, status, val_acc per epoch) per trial."""
    sweep = store.create_sweep(
        warm_spec(params=params or {"lr": LR, "batch_size": {"type": "choice", "values": [32, 64]}}),
        "synthetic:100",
        "v",
    )
    for i, (config, status, accs) in enumerate(trials):
        tid = lifecycle.trial_started(store, sweep.id, f"t{i}", config, 2)
        for e, acc in enumerate(accs, 1):
            store.trial_epoch(
                tid,
                {
                    "epoch": e,
                    "train_loss": 1.0,
                    "train_acc": 0.5,
                    "val_loss": 1 - acc,
                    "val_acc": acc,
                    "lr": 0.1,
                    "seconds": 1.0,
                    "images_per_s": 1.0,
                },
            )
        lifecycle.trial_ended(store, tid, status)
    return sweep.id


@pytest.fixture
def store(tmp_path):
    return get_store(f"sqlite:///{tmp_path / 's.db'}")


def test_only_finished_trials_that_fit_the_new_space_are_used(store):
    mlp = {"model": "mlp", "epochs": 2}
    old = _old_sweep(
        store,
        [
            ({**mlp, "lr": 0.01, "batch_size": 32}, "terminated", [0.3, 0.5]),
            ({**mlp, "lr": 0.05, "batch_size": 64}, "early_stopped", [0.2]),
            ({**mlp, "lr": 0.02, "batch_size": 64}, "errored", [0.4]),  # no score
            ({**mlp, "lr": 0.5, "batch_size": 32}, "terminated", [0.1, 0.1]),  # lr outside the new range
            ({**mlp, "lr": 0.01, "batch_size": 128}, "terminated", [0.1, 0.2]),  # not a choice of the new space
            ({"model": "simple_cnn", "epochs": 2, "lr": 0.01, "batch_size": 32}, "terminated", [0.6, 0.7]),  # fixed
        ],
    )
    warm = warm_points(parse_spec(warm_spec(search={"algorithm": "hyperopt", "warm_start": {"sweeps": [old]}})), store)
    assert sorted(warm.points, key=lambda p: p[0]["lr"]) == [
        ({"lr": 0.01, "batch_size": 32}, 0.5),
        ({"lr": 0.05, "batch_size": 64}, 0.2),
    ]
    assert warm.seen == 5 and warm.skipped == 3
    best = parse_spec(
        warm_spec(metric="best_val_acc", search={"algorithm": "hyperopt", "warm_start": {"sweeps": [old]}})
    )
    assert {p[0]["lr"]: p[1] for p in warm_points(best, store).points} == {0.01: 0.5, 0.05: 0.2}


def test_unknown_or_unrelated_sweeps_are_refused_by_name(store):
    other = _old_sweep(
        store,
        [({"model": "mlp", "momentum": 0.9}, "terminated", [0.3])],
        params={"momentum": {"type": "uniform", "low": 0.5, "high": 0.99}},
    )
    with pytest.raises(SpecError, match=r"sweeps\[0\]: no sweep 'sw-nope' in the store"):
        warm_points(
            parse_spec(warm_spec(search={"algorithm": "hyperopt", "warm_start": {"sweeps": ["sw-nope"]}})), store
        )
    with pytest.raises(SpecError, match=rf"sweeps\[0\]: sweep {other} searched \['momentum'\], which shares no param"):
        warm_points(parse_spec(warm_spec(search={"algorithm": "hyperopt", "warm_start": {"sweeps": [other]}})), store)


@pytest.mark.parametrize(
    "search,message",
    [
        ({"algorithm": "random", "warm_start": {"sweeps": ["sw-a"]}}, "needs search.algorithm hyperopt"),
        ({"algorithm": "hyperopt", "warm_start": {"sweeps": []}}, "at least 1 item"),
        (
            {
                "algorithm": "hyperopt",
                "warm_start": {"sweeps": ["sw-a"]},
                "points_to_evaluate": [{"lr": 0.01, "batch_size": 32}],
            },
            "use one",
        ),
    ],
)
def test_warm_start_spec_errors(search, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(warm_spec(search=search))


def test_the_searcher_holds_the_old_trials_as_evaluated_and_suggests_new_configs():
    from cifar_sweeps.tuning.searchers import WarmHyperOptSearch, make_search

    spec = parse_spec(
        warm_spec(
            search={"algorithm": "hyperopt", "seed": 0, "n_initial_points": 3, "warm_start": {"sweeps": ["sw-x"]}}
        )
    )
    evaluated = [({"lr": 0.001 * (i + 1), "batch_size": [32, 64][i % 2]}, 0.1 * i) for i in range(6)]
    searcher = make_search(spec, evaluated)
    assert isinstance(searcher, WarmHyperOptSearch) and searcher.warm_trials == 6
    losses = sorted(t["result"]["loss"] for t in searcher._hpopt_trials.trials)
    assert losses == pytest.approx(sorted(-0.1 * i for i in range(6)))  # max metric: hyperopt minimizes -score
    old = {(round(v["lr"], 6), v["batch_size"]) for v, _ in evaluated}
    suggested = [searcher.suggest(f"trial{i}") for i in range(8)]
    assert all(s["model"] == "mlp" and s["batch_size"] in (32, 64) for s in suggested)
    assert not {(round(s["lr"], 6), s["batch_size"]) for s in suggested} & old  # none run again
    assert len(searcher._hpopt_trials.trials) == 6 + 8


def test_api_refuses_an_unknown_warm_start_sweep_and_stores_nothing(tmp_path):
    settings = Settings(results_dir=tmp_path, api_token="s3cret-token")
    store = get_store(settings.resolved_store_url())
    client = TestClient(create_app(settings, FakeJobs(store)))
    bad = warm_spec(search={"algorithm": "hyperopt", "warm_start": {"sweeps": ["sw-0000000000"]}})
    r = client.post("/sweeps", json=bad, headers=AUTH)
    assert r.status_code == 422 and "no sweep 'sw-0000000000'" in r.json()["detail"], r.text
    assert store.list_sweeps()[1] == 0
    old = _old_sweep(store, [({"model": "mlp", "epochs": 2, "lr": 0.01, "batch_size": 32}, "terminated", [0.4])])
    good = json.loads(json.dumps(bad).replace("sw-0000000000", old))
    r = client.post("/sweeps", json=good, headers=AUTH)
    assert r.status_code == 201, r.text
    assert re.match(r"sw-", r.json()["id"]) and store.list_sweeps()[1] == 2
