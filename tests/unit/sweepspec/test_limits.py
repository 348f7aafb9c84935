"""A running sweep's limits (sweepspec/limits.py, lifecycle.change_limits, PATCH /sweeps/{id}):
checked as a submitted spec is, written only while the sweep is queued or running, nothing
changed otherwise. The driver's side runs in test_limits_e2e.py."""

from __future__ import annotations

import pytest

from cifar_sweeps.errors import SpecError, TransitionError
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.limits import Limits, live_values, with_limits
from tests.helpers.jobs import app_with_token
from tests.helpers.specs import ONE_AT_A_TIME as SPEC

AUTH = {"Authorization": "Bearer s3cret-token"}


@pytest.fixture
def setup(tmp_path):
    return app_with_token(tmp_path, max_num_samples=50, max_concurrent_trials=8)


@pytest.mark.parametrize(
    "body,says",
    [
        ({}, "at least one of num_samples, max_concurrent_trials, time_budget_s"),
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": None}, "num_samples: give a number"),
        ({"max_concurrent_trials": -1}, "max_concurrent_trials"),
        ({"time_budget_s": 0}, "time_budget_s"),
        ({"params": {}}, "params"),
    ],
)
def test_bad_limits_are_422_naming_the_field_and_change_nothing(setup, body, says):
    client, store, _ = setup
    sweep = store.create_sweep(SPEC, "synthetic:100", "v")
    r = client.patch(f"/sweeps/{sweep.id}", json=body, headers=AUTH)
    assert r.status_code == 422 and says in r.text, r.text
    assert store.sweep(sweep.id).spec == SPEC


def test_limits_over_the_services_own_are_422(setup):
    client, store, _ = setup
    sweep = store.create_sweep(SPEC, "synthetic:100", "v")
    r = client.patch(f"/sweeps/{sweep.id}", json={"num_samples": 51}, headers=AUTH)
    assert r.status_code == 422 and "over the limit of 50" in r.json()["detail"]
    r = client.patch(f"/sweeps/{sweep.id}", json={"max_concurrent_trials": 9}, headers=AUTH)
    assert r.status_code == 422 and "over the limit of 8" in r.json()["detail"]
    assert store.sweep(sweep.id).spec == SPEC


def test_a_queued_sweeps_limits_change_and_the_rest_stays(setup):
    client, store, _ = setup
    sweep = store.create_sweep({**SPEC, "time_budget_s": 600}, "synthetic:100", "v")
    r = client.patch(f"/sweeps/{sweep.id}", json={"num_samples": 6, "max_concurrent_trials": 2}, headers=AUTH)
    assert r.status_code == 200, r.text
    stored = store.sweep(sweep.id).spec
    assert live_values(stored) == (6, 2, 600)
    assert stored["params"] == SPEC["params"] and stored["fixed"] == SPEC["fixed"]
    r = client.patch(f"/sweeps/{sweep.id}", json={"time_budget_s": None}, headers=AUTH)  # null: no budget
    assert r.status_code == 200 and live_values(store.sweep(sweep.id).spec) == (6, 2, None)


def test_an_ended_sweep_is_409_and_unchanged_and_a_token_is_needed(setup):
    client, store, _ = setup
    sweep = store.create_sweep(SPEC, "synthetic:100", "v")
    assert client.patch(f"/sweeps/{sweep.id}", json={"num_samples": 5}).status_code == 401
    lifecycle.request_stop(store, sweep.id)  # queued, no job yet: stopped at once
    r = client.patch(f"/sweeps/{sweep.id}", json={"num_samples": 5}, headers=AUTH)
    assert r.status_code == 409 and "only a queued or running sweep" in r.json()["detail"]
    assert store.sweep(sweep.id).spec == SPEC
    assert client.patch("/sweeps/sw-nope", json={"num_samples": 5}, headers=AUTH).status_code == 404


def test_a_grid_keeps_its_trial_count(setup):
    _, store, settings = setup
    grid = {**SPEC, "search": {"algorithm": "grid"}, "params": {"lr": {"type": "choice", "values": [0.01, 0.1]}}}
    sweep = store.create_sweep(grid, "synthetic:100", "v")
    with pytest.raises(SpecError, match="grid"):
        lifecycle.change_limits(store, sweep.id, Limits(num_samples=3), settings)
    assert with_limits(grid, Limits(time_budget_s=60)).time_budget_s == 60


def test_change_limits_refuses_a_sweep_that_ended_between_read_and_write(setup, monkeypatch):
    _, store, settings = setup
    sweep = store.create_sweep(SPEC, "synthetic:100", "v")
    monkeypatch.setattr(store, "set_active_spec", lambda *a: False)  # the driver ended it meanwhile
    with pytest.raises(TransitionError, match="ended meanwhile"):
        lifecycle.change_limits(store, sweep.id, Limits(num_samples=5), settings)


def test_the_cli_changes_a_queued_sweep_and_names_what_it_refuses(tmp_path, capsys):
    from cifar_sweeps.cli import main

    store = get_store(Settings(results_dir=tmp_path).resolved_store_url())
    sweep = store.create_sweep(SPEC, "synthetic:100", "v")
    common = ["--results-dir", str(tmp_path)]
    assert main(["update", sweep.id, "--max-concurrent", "3", "--time-budget", "900", *common]) == 0
    assert "max_concurrent_trials 3, time_budget_s 900" in capsys.readouterr().out
    assert main(["update", sweep.id, "--no-time-budget", *common]) == 0
    assert live_values(store.sweep(sweep.id).spec) == (4, 3, None)
    assert main(["update", sweep.id, *common]) != 0  # nothing to change
    assert "at least one of" in capsys.readouterr().err
    assert main(["update", sweep.id, "--num-samples", "0", *common]) != 0
    assert "num_samples" in capsys.readouterr().err


def test_the_stopper_and_the_search_follow_the_store(setup):
    """The driver's side without Ray's loop: the time budget and the trial count the store
    holds now, read again after each change (LiveLimits reads at most once a second)."""
    from cifar_sweeps.tuning.driver import StoreStopper
    from cifar_sweeps.tuning.live import LiveLimits

    _, store, settings = setup
    sweep = store.create_sweep({**SPEC, "time_budget_s": 3600}, "synthetic:100", "v")
    limits = LiveLimits(store.url, sweep.id, 4, 1, 3600)
    stopper = StoreStopper(store.url, sweep.id, every_s=0.0, limits=limits)
    assert not stopper.stop_all()
    lifecycle.change_limits(store, sweep.id, Limits(time_budget_s=0.001, num_samples=7), settings)
    limits._read_at = float("-inf")  # as if a second had passed
    assert limits.now() == (7, 1, 0.001)
    stopper._last = float("-inf")
    assert stopper.stop_all()  # spent: every trial stops


def test_only_a_tune_state_of_the_live_search_can_be_extended(tmp_path):
    """What lifecycle.extend checks before it queues anything: the pickled Tuner names the
    class (a Tuner pickles its search algorithm whole)."""
    from ray import cloudpickle as pickle  # as Tune writes tuner.pkl
    from ray.tune.search.optuna import OptunaSearch

    from cifar_sweeps.store.artifacts import LIVE_SEARCH, why_not_extendable
    from cifar_sweeps.tuning.live import LiveLimits, LiveSearch

    live = LiveSearch(OptunaSearch(), LiveLimits("sqlite://", "sw-x", 4, 1, None))
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "tuner.pkl").write_bytes(pickle.dumps({"search_alg": live}))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "tuner.pkl").write_bytes(pickle.dumps({"search_alg": OptunaSearch()}))
    assert LiveSearch.__name__ == LIVE_SEARCH
    assert why_not_extendable(str(tmp_path / "new")) is None
    assert "older version" in why_not_extendable(str(tmp_path / "old"))
    assert "not at" in why_not_extendable(str(tmp_path / "gone"))
    assert why_not_extendable("s3://bucket/sw-x") is None  # the driver's to read


def _ended_with_state(store, tmp_path, spec, live=True):
    from ray import cloudpickle as pickle
    from ray.tune.search.optuna import OptunaSearch

    from cifar_sweeps.tuning.live import LiveLimits, LiveSearch

    sweep = store.create_sweep(spec, "synthetic:100", "v")
    path = tmp_path / sweep.id
    path.mkdir()
    alg = LiveSearch(OptunaSearch(), LiveLimits(store.url, sweep.id, 4, 1, None)) if live else OptunaSearch()
    (path / "tuner.pkl").write_bytes(pickle.dumps({"search_alg": alg}))
    lifecycle.claim(store, sweep.id, "here", 1, str(path))
    lifecycle.stopped(store, sweep.id)
    return sweep.id


def test_extend_queues_an_ended_sweep_and_refuses_what_it_cant(setup, tmp_path):
    from cifar_sweeps.errors import SweepError

    client, store, settings = setup
    sweep_id = _ended_with_state(store, tmp_path, SPEC)
    r = client.post(f"/sweeps/{sweep_id}/extend", json={"trials": 60}, headers=AUTH)
    assert r.status_code == 422 and "over the limit of 50" in r.json()["detail"]
    assert store.sweep(sweep_id).status == "stopped"
    assert lifecycle.extend(store, sweep_id, 6, settings) == "queued"
    assert store.sweep(sweep_id).spec["num_samples"] == 6  # no search trial yet: 0 + 6
    with pytest.raises(SweepError, match="extend it once it has ended"):
        lifecycle.extend(store, sweep_id, 2, settings)

    old = _ended_with_state(store, tmp_path, SPEC, live=False)
    r = client.post(f"/sweeps/{old}/extend", json={"trials": 2}, headers=AUTH)
    assert r.status_code == 409 and "older version" in r.json()["detail"]
    grid = {**SPEC, "search": {"algorithm": "grid"}, "params": {"lr": {"type": "choice", "values": [0.01, 0.1]}}}
    with pytest.raises(SweepError, match="grid"):
        lifecycle.extend(store, _ended_with_state(store, tmp_path, grid), 2, settings)
    never = store.create_sweep(SPEC, "synthetic:100", "v")
    lifecycle.request_stop(store, never.id)
    with pytest.raises(SweepError, match="never started"):
        lifecycle.extend(store, never.id, 2, settings)
