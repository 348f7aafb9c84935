"""Multi-objective pieces without Ray: the Pareto ranking against a brute-force check (ties
and duplicates included), the spec's objectives and their refusals, the front and the
leaderboard's order over stored cost metrics, the API and the CLI agreeing."""

from __future__ import annotations

import json
import random

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.analysis.ranking import dominates, pareto_ranks
from cifar_sweeps.cli import main
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs
from tests.helpers.pareto import brute_front
from tests.helpers.specs import AUTH


@pytest.mark.parametrize("seed", range(20))
def test_pareto_ranks_match_brute_force(seed):
    rng = random.Random(seed)
    modes = [rng.choice(["max", "min"]) for _ in range(rng.choice([2, 3]))]
    # Few distinct values: ties on one axis and duplicate points are common.
    points = [tuple(rng.choice([0, 1, 2, 3, 4]) for _ in modes) for _ in range(rng.randint(1, 40))]
    ranks = pareto_ranks(points, modes)
    left = set(range(len(points)))
    front = 0
    while left:
        front += 1
        sub = sorted(left)
        brute = {sub[i] for i in brute_front([points[k] for k in sub], modes)}
        assert {i for i in left if ranks[i] == front} == brute
        left -= brute
    for i, p in enumerate(points):  # duplicates share a front
        assert all(ranks[j] == ranks[i] for j, q in enumerate(points) if q == p)


def test_dominance_needs_one_strict_improvement():
    assert dominates((0.9, 10), (0.8, 10), ("max", "min"))
    assert not dominates((0.9, 10), (0.9, 10), ("max", "min"))
    assert not dominates((0.9, 20), (0.8, 10), ("max", "min"))


GOOD = {
    "name": "mo",
    "num_samples": 4,
    "search": {"algorithm": "optuna"},
    "scheduler": {"type": "fifo"},
    "fixed": {"epochs": 2},
    "params": {"model": {"type": "choice", "values": ["mlp", "simple_cnn", "default_conv"]}},
    "objectives": [{"metric": "best_val_acc", "mode": "max"}, {"metric": "params", "mode": "min"}],
}


@pytest.mark.parametrize(
    "change,field",
    [
        ({"objectives": []}, "objectives: empty"),
        ({"objectives": [{"metric": "best_val_acc", "mode": "max"}]}, "objectives: give two or more"),
        ({"objectives": [{"metric": "flops", "mode": "min"}, {"metric": "params", "mode": "min"}]}, "objectives.0"),
        (
            {"objectives": [{"metric": "params", "mode": "min"}, {"metric": "params", "mode": "min"}]},
            "objectives[1].metric: params is already objectives[0]",
        ),
        ({"objectives": [{"metric": "best_val_acc", "mode": "min"}, {"metric": "params", "mode": "min"}]}, "mode"),
        ({"scheduler": {"type": "asha"}}, "scheduler.type: asha stops trials by one metric"),
        ({"search": {"algorithm": "hyperopt"}}, "search.algorithm: several objectives need optuna"),
    ],
)
def test_bad_objectives_are_422_naming_the_field_and_store_nothing(tmp_path, change, field):
    settings = Settings(results_dir=tmp_path, api_token="s3cret-token")
    store = get_store(settings.resolved_store_url())
    client = TestClient(create_app(settings, FakeJobs(store)))
    r = client.post("/sweeps", json={**GOOD, **change}, headers=AUTH)
    assert r.status_code == 422 and field in r.json()["detail"], r.text
    assert store.list_sweeps()[1] == 0
    assert client.post("/sweeps", json=GOOD, headers=AUTH).status_code == 201


def _stored(tmp_path):
    settings = Settings(results_dir=tmp_path, api_token="s3cret-token", cache_ttl_s=0)
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep(GOOD, "synthetic:100", "v")
    rng = random.Random(1)
    for i in range(12):
        model = rng.choice(["mlp", "simple_cnn", "default_conv"])
        tid = lifecycle.trial_started(store, sweep.id, f"t{i}", {"model": model, "lr": i / 100}, 2)
        acc = round(rng.uniform(0.3, 0.8), 2)
        store.trial_epoch(
            tid,
            {
                "epoch": 1,
                "train_loss": 1,
                "train_acc": acc,
                "val_loss": 1 - acc,
                "val_acc": acc,
                "lr": 0.01,
                "seconds": 1,
                "images_per_s": 1,
                "params": rng.choice([1e4, 5e4, 2e5]),
                "latency_ms": rng.uniform(0.1, 2),
                "latency_ms_batch": rng.uniform(0.01, 0.2),
            },
        )
        lifecycle.trial_ended(store, tid, "terminated")
    return settings, store, sweep


def test_the_front_and_the_order_over_cost_metrics(tmp_path, capsys):
    settings, store, sweep = _stored(tmp_path)
    client = TestClient(create_app(settings, FakeJobs(store)))
    body = client.get(f"/sweeps/{sweep.id}/pareto").json()
    assert (body["x"], body["y"]) == ("best_val_acc", "params")  # the spec's objectives
    trials = store.trials(sweep.id)
    points = [(t.val_acc, t.params) for t in trials]
    assert set(body["front"]) == {trials[i].id for i in brute_front(points, ["max", "min"])}
    other = client.get(f"/sweeps/{sweep.id}/pareto", params={"x": "latency_ms", "y": "best_val_acc"}).json()
    points = [(t.latency_ms, t.val_acc) for t in trials]
    assert set(other["front"]) == {trials[i].id for i in brute_front(points, ["min", "max"])}
    assert client.get(f"/sweeps/{sweep.id}/pareto", params={"x": "flops"}).status_code == 422
    rows = client.get("/leaderboard", params={"sort": "params"}).json()["items"]
    assert [r["params"] for r in rows] == sorted(t.params for t in trials)
    assert all(r["latency_ms"] is not None and r["latency_ms_batch"] is not None for r in rows)
    assert main(["pareto", sweep.id, "--results-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["front"] == body["front"]


def test_a_multi_objective_searcher_takes_a_warm_start_with_several_values():
    """Earlier trials go to Optuna's multi-objective study as evaluated, one value per
    objective (Ray's OptunaSearch would hand Optuna a single value, which it refuses)."""
    from cifar_sweeps.sweepspec.schema import parse_spec
    from cifar_sweeps.tuning.searchers import make_search

    spec = parse_spec({**GOOD, "search": {"algorithm": "optuna", "seed": 0, "warm_start": {"sweeps": ["sw-x"]}}})
    evaluated = [
        ({"model": m}, [acc, params])
        for m, acc, params in (("mlp", 0.4, 1.6e6), ("simple_cnn", 0.6, 2.1e6), ("default_conv", 0.5, 6.2e4))
    ]
    searcher = make_search(spec, evaluated)
    done = searcher._ot_study.get_trials(deepcopy=False)
    assert [t.values for t in done] == [[0.4, 1.6e6], [0.6, 2.1e6], [0.5, 6.2e4]]
    assert [t.params["model"] for t in done] == ["mlp", "simple_cnn", "default_conv"]
    assert searcher._ot_study.directions[1].name == "MINIMIZE"
    assert searcher.suggest("t1")["model"] in ("mlp", "simple_cnn", "default_conv")


def test_the_two_objective_sort_agrees_with_the_general_sorting_on_random_points_with_ties():
    import random

    from cifar_sweeps.analysis.ranking import pareto_ranks
    from cifar_sweeps.analysis.ranking import pareto_ranks_by_definition as by_definition

    rng = random.Random(0)
    for _ in range(300):
        points = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(rng.randint(1, 40))]
        modes = rng.choice([["min", "max"], ["max", "max"], ["min", "min"], ["max", "min"]])
        assert pareto_ranks(points, modes) == by_definition(points, modes), (points, modes)
    n = 20_000  # a chain of 20,000 fronts: the quadratic way took minutes
    ranks = pareto_ranks([(i, -i) for i in range(n)], ["min", "max"])  # each dominates the next
    assert ranks == list(range(1, n + 1))
