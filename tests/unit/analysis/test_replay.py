"""The replay (cifar_sweeps.tuning.replay, run by benchmarks/replay.py) against what can
be computed without it: random search with full-length trials, one at a time, is k
independent draws from the table, so its expected best after k trials is an order
statistic of the table's values; and the mapping of a suggestion to the nearest tabulated
configuration."""

from __future__ import annotations

import math
import statistics

import pytest

from benchmarks.replay import METHODS, REPORT, centre, method_on, seeds_needed
from cifar_sweeps.analysis.replay import Table, at, nearest
from cifar_sweeps.tuning.replay import replay, reseeded, table_spec

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
    spec = table_spec(table, {**METHODS[REPORT], "max_concurrent_trials": 1}, 0, num_samples=k)
    bests = []
    for s in range(seeds):
        curve = replay(table, reseeded(spec, s), s, 1e9)
        assert curve[-1][0] <= k  # one second an epoch, one trial at a time: k trials take k s
        bests.append(at(curve, 1e9)[0])
    se = statistics.stdev(bests) / seeds**0.5 if k > 1 else statistics.pstdev(VALS) / seeds**0.5
    assert abs(statistics.fmean(bests) - expected_best(k)) < 4 * se + 1e-9, (statistics.fmean(bests), expected_best(k))


def test_a_budget_cuts_the_anytime_curve():
    table = _table()
    spec = table_spec(table, {**METHODS[REPORT], "max_concurrent_trials": 1}, 0, num_samples=10)
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


def test_a_centre_first_method_starts_every_seed_at_the_tables_centre():
    """The centre of a choice is its middle value (lr 0.05 of 0.01-0.08), of a log range its
    geometric mean; the first result of every seed is the centre's, whatever the seed draws
    after it, where plain random search starts elsewhere."""
    table = _table()
    assert centre(table.space) == {"lr": 0.05}
    log_space = {"params": {"lr": {"type": "loguniform", "low": 0.01, "high": 0.08}}}
    assert centre(log_space)["lr"] == pytest.approx(math.sqrt(0.01 * 0.08))
    name = "random + fifo, centre first"
    spec = table_spec(table, {**method_on(table, name), "max_concurrent_trials": 1}, 0, num_samples=3)
    firsts = {replay(table, reseeded(spec, s), s, 1e9)[0][1] for s in range(20)}
    assert firsts == {VALS[4]}  # lr 0.05 is configuration 4
    plain = table_spec(table, {**METHODS[REPORT], "max_concurrent_trials": 1}, 0, num_samples=3)
    assert len({replay(table, reseeded(plain, s), s, 1e9)[0][1] for s in range(20)}) > 1


def test_the_seeds_a_live_comparison_needs():
    """((1.96 + 0.84) * sd / mean)^2: a one-sd gain needs 8 seeds, a tenth of it 785; no
    gain, never; differences all alike, one."""
    assert seeds_needed([0.0, 1.0, 2.0]) == "8"  # mean 1, sd 1: 7.85
    assert seeds_needed([-0.9, 0.1, 1.1]) == "785"  # mean 0.1, sd 1
    assert seeds_needed([-1.0, 0.0, 1.0]) == "never"
    assert seeds_needed([-0.1, 0.0, 0.1001]) == "never"  # past 10,000
    assert seeds_needed([0.5, 0.5]) == "1" and seeds_needed([0.0, 0.0]) == "never"


# ------------------------------------------------------------ plan --replay (CLI and API)


def _write_table(folder, name: str = "toy"):
    """A tabulated task in benchmarks/tabulate.py's format: 12 configurations of lr and
    epochs; the validation accuracy peaks at lr 0.01 and grows with each epoch."""
    import csv
    import json as js
    import math as m

    from benchmarks.tabulate import COLUMNS

    params = {
        "lr": {"type": "loguniform", "low": 0.001, "high": 0.1},
        "epochs": {"type": "quniform", "low": 1, "high": 3, "q": 1},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(
        js.dumps({"task": name, "space": {"fixed": {"model": "mlp"}, "params": params}, "cpu": "test", "data": "toy"})
    )
    with (folder / f"{name}.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for i in range(12):
            lr, epochs = 10 ** (-3 + 2 * (i % 4) / 3), 1 + i // 4
            peak = 0.8 - 0.1 * abs(m.log10(lr) + 2)
            for seed in range(2):
                for e in range(1, epochs + 1):
                    val = round(peak * e / 3 + 0.01 * seed, 4)
                    w.writerow(
                        {"task": name, "config_id": i, "params": js.dumps({"epochs": epochs, "lr": lr}), "seed": seed,
                         "epoch": e, "val_acc": val, "test_acc": val - 0.02, "seconds": 1.0}
                    )  # fmt: skip
    return folder / f"{name}.csv"


def test_plan_replay_prints_the_expected_best_against_simulated_seconds(tmp_path, capsys):
    import json as js

    from cifar_sweeps.cli import main
    from tests.helpers.plans import BASE, measured_store

    measured_store(tmp_path)
    table = _write_table(tmp_path / "tables")
    spec = tmp_path / "s.json"
    spec.write_text(
        js.dumps(BASE | {"search": {"algorithm": "random"}, "num_samples": 6, "resources_per_trial": {"cpu": 1}})
    )
    args = ["plan", str(spec), "--results-dir", str(tmp_path), "--replay", str(table), "--replay-seeds", "8"]
    assert main([*args, "--json"]) == 0
    out = js.loads(capsys.readouterr().out)["replay"]
    assert out["table"] == "toy" and out["seeds"] == 8 and out["trials"] == 6  # the spec's num_samples
    vals = [p["val_acc"] for p in out["points"] if p["val_acc"] is not None]
    assert vals and vals == sorted(vals) and 0.5 <= vals[-1] <= 0.81  # within the table's values, not worse later
    assert out["points"][-1]["seconds"] == pytest.approx(out["budget_s"])
    assert main(args) == 0
    assert "replay on the table toy (12 configurations, test), 8 seeds" in capsys.readouterr().out


def test_the_apis_plan_replays_a_named_table_only(tmp_path):
    from fastapi.testclient import TestClient

    from cifar_sweeps.service.api import create_app
    from tests.helpers.jobs import FakeJobs
    from tests.helpers.plans import BASE, measured_store
    from tests.helpers.specs import AUTH

    settings, store = measured_store(tmp_path)
    _write_table(tmp_path / "tables")
    settings = settings.model_copy(update={"replay_tables": str(tmp_path / "tables")})
    client = TestClient(create_app(settings, FakeJobs(store)))
    body = BASE | {"search": {"algorithm": "random"}, "resources_per_trial": {"cpu": 1}, "time_budget_s": 6}
    r = client.post("/sweeps/plan?replay=toy&replay_seeds=4", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["replay"]["budget_s"] == 6 and len(r.json()["replay"]["points"]) == 5
    missing = client.post("/sweeps/plan?replay=nope", json=body, headers=AUTH)
    assert missing.status_code == 404 and "tables: toy" in missing.json()["detail"]
    for bad in ("../toy", str(tmp_path / "tables" / "toy.csv")):  # a path from HTTP is never read
        assert client.post("/sweeps/plan", params={"replay": bad}, json=body, headers=AUTH).status_code == 422
    assert client.post("/sweeps/plan?replay=toy&replay_seeds=500", json=body, headers=AUTH).status_code == 422
