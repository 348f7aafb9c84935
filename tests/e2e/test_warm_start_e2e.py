"""A warm-started sweep on a real Ray head trains only configurations the earlier sweeps did
not."""

from __future__ import annotations

import json

import pytest

from tests.helpers.specs import warm_spec


@pytest.mark.slow
def test_a_warm_started_sweep_on_real_ray_trains_only_new_configs(ray_head, tmp_path):
    from tests.helpers.sweeps import open_store, run_cli, sweep_env

    results = tmp_path / "results"
    env = sweep_env(ray_head, results)
    first = tmp_path / "first.json"
    first.write_text(json.dumps(warm_spec(name="first")))
    p = run_cli(["run", str(first), "--data", "synthetic:600"], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = open_store(results)
    (old,), _ = store.list_sweeps()
    old_configs = {(t.config["lr"], t.config["batch_size"]) for t in store.trials(old.id)}
    assert len(old_configs) == 4 and old.warm_trials is None

    second = tmp_path / "second.json"
    second.write_text(
        json.dumps(
            warm_spec(
                name="second",
                num_samples=3,
                search={"algorithm": "hyperopt", "seed": 0, "n_initial_points": 3, "warm_start": {"sweeps": [old.id]}},
            )
        )
    )
    p = run_cli(["run", str(second), "--data", "synthetic:600"], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert f"warm start: 4 finished trials of {old.id} given to the searcher as evaluated" in p.stdout
    new = next(s for s in store.list_sweeps()[0] if s.name == "second")
    assert new.status == "succeeded" and new.warm_trials == 4
    trials = store.trials(new.id)
    assert len(trials) == 3  # num_samples new trials ...
    assert not {(t.config["lr"], t.config["batch_size"]) for t in trials} & old_configs  # ... none of the old
