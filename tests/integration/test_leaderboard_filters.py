"""The leaderboard filtered by config parameters and status, as JSON, CSV and on the command
line, on SQLite and on PostgreSQL (their JSON operators differ): a range filter returns
exactly the matching trials, and the CSV parses to the same rows as the JSON."""

from __future__ import annotations

import csv
import io
import itertools
import json
import random

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.cli import main
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from tests.helpers.jobs import FakeJobs

_db = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def board(request, tmp_path):
    url = (
        ""
        if request.param == "sqlite"
        else request.getfixturevalue("postgres").new_database(
            f"lb{next(_db)}_{tmp_path.name[-10:].lower()}".replace("-", "_")
        )
    )
    settings = Settings(results_dir=tmp_path, store_url=url)
    store = get_store(settings.resolved_store_url())
    rng = random.Random(0)
    configs = {}
    for s in range(2):
        sweep = store.create_sweep({"name": f"s{s}"}, "synthetic:10", "v")
        for i in range(20):
            cfg = {
                "model": rng.choice(["mlp", "simple_cnn"]),
                "lr": round(10 ** rng.uniform(-4, -1), 6),
                "batch_size": rng.choice([32, 64, 128]),
                "activation": rng.choice(["relu", "elu"]),
                "flip": rng.random() < 0.5,
            }
            tid = lifecycle.trial_started(store, sweep.id, f"t{i}", cfg, 2)
            acc = rng.random()
            store.trial_epoch(
                tid,
                {
                    "epoch": 1,
                    "train_loss": 1.0,
                    "train_acc": acc,
                    "val_loss": 1 - acc,
                    "val_acc": acc,
                    "lr": cfg["lr"],
                    "seconds": 1.0,
                    "images_per_s": 1.0,
                },
            )
            status = rng.choice(["terminated", "early_stopped", "running"])
            if status != "running":
                lifecycle.trial_ended(store, tid, status)
            configs[tid] = (cfg, status)
    client = TestClient(create_app(settings, FakeJobs(store)))
    return client, configs, settings


def _expected(configs, keep) -> set[str]:
    return {tid for tid, (cfg, status) in configs.items() if keep(cfg, status)}


CASES = [
    ({"filter": "lr:0.001..0.01"}, lambda c, s: 0.001 <= c["lr"] <= 0.01),
    ({"filter": "lr:..0.0005"}, lambda c, s: c["lr"] <= 0.0005),
    (
        {"filter": ["batch_size:32,64", "activation:relu"]},
        lambda c, s: c["batch_size"] in (32, 64) and c["activation"] == "relu",
    ),
    ({"filter": "flip:true", "status": "terminated"}, lambda c, s: c["flip"] and s == "terminated"),
    ({"status": ["early_stopped", "running"], "model": "mlp"}, lambda c, s: s != "terminated" and c["model"] == "mlp"),
]


@pytest.mark.parametrize("params,keep", CASES, ids=[json.dumps(c[0]) for c in CASES])
def test_filters_return_exactly_the_matching_trials_and_csv_agrees(board, params, keep):
    client, configs, _ = board
    r = client.get("/leaderboard", params={**params, "limit": 1000})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert {i["trial_id"] for i in items} == _expected(configs, keep) and r.json()["total"] == len(items)
    rows = list(csv.DictReader(io.StringIO(client.get("/leaderboard.csv", params=params).text)))
    assert [row["trial_id"] for row in rows] == [i["trial_id"] for i in items]
    for row, item in zip(rows, items, strict=True):
        assert float(row["val_acc"]) == pytest.approx(item["val_acc"]) and row["status"] == item["status"]
        assert float(row["config.lr"]) == pytest.approx(item["config"]["lr"])
        assert row["config.batch_size"] == str(item["config"]["batch_size"])


def test_the_command_line_gives_the_same_csv(board, capsys):
    client, configs, settings = board
    api = client.get("/leaderboard.csv", params={"filter": "lr:0.001..0.01"}).text
    store_args = ["--results-dir", str(settings.results_dir)] + (
        ["--store-url", settings.store_url] if settings.store_url else []
    )
    assert main(["leaderboard", "--filter", "lr:0.001..0.01", "--csv", "--top", "1000", *store_args]) == 0
    cli = capsys.readouterr().out

    def strip(text: str) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "checkpoint_url"} for r in csv.DictReader(io.StringIO(text))]

    assert strip(cli) == strip(api) and len(strip(cli)) == len(
        _expected(configs, lambda c, s: 0.001 <= c["lr"] <= 0.01)
    )


@pytest.mark.parametrize("bad", ["lr:abc..1", "lr:", ":1..2", "lr:0.1..0.01", "lr:..", "l r:1..2", "lr:nan..1"])
def test_bad_filters_are_a_422_naming_the_filter(board, bad):
    client, _, _ = board
    r = client.get("/leaderboard", params={"filter": bad})
    assert r.status_code == 422 and "filter" in r.json()["detail"], r.text
    assert client.get("/leaderboard.csv", params={"filter": bad}).status_code == 422
