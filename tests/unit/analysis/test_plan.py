"""The cost plan: the arithmetic on fixed specs (fifo, ASHA's rungs, a budget, repeats,
concurrency, a time budget), throughput from the store and from a probe, and no side
effect (no sweep stored, no Ray job submitted)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.analysis.plan import make_plan, per_trial_epochs, slots, trial_epochs
from cifar_sweeps.analysis.schemas import PlanResources
from cifar_sweeps.analysis.throughput import Throughput
from cifar_sweeps.service.api import create_app
from cifar_sweeps.store import lifecycle
from cifar_sweeps.sweepspec.schema import parse_spec
from tests.helpers.jobs import FakeJobs
from tests.helpers.plans import BASE, measured_store
from tests.helpers.specs import AUTH

TWO_CPUS = PlanResources(cpus=2, gpus=0, memory_mb=24_000, source="test")


def _spec(**over):
    return parse_spec({**BASE, **over})


def test_fifo_trains_every_epoch():
    e, repeats, cuts = trial_epochs(_spec(scheduler={"type": "fifo"}))
    assert (e.min, e.expected, e.max, repeats, cuts) == (36, 36, 36, 0, [])


def test_asha_rung_arithmetic():
    spec = _spec(scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 3})
    per = per_trial_epochs(spec)
    assert (per.min, per.max) == (1, 9) and per.expected == pytest.approx(1 + 2 / 3 + 6 / 9)
    assert "rungs at [1, 3, 9]" in per.assumption
    e, _, _ = trial_epochs(spec)
    assert (e.min, e.max) == (9 + 3 * 1, 36)  # one trial goes the distance, the rest stop at the first rung
    assert e.expected == pytest.approx(4 * (1 + 2 / 3 + 6 / 9))


def test_a_budget_cuts_and_repeats_add():
    spec = _spec(scheduler={"type": "fifo"}, budget={"epochs": 40}, num_samples=10, repeat={"top": 1, "seeds": 2})
    e, repeats, cuts = trial_epochs(spec)
    assert repeats == 9  # 1 configuration x 1 more seed x 9 epochs, reserved from the budget
    assert cuts == ["budget.epochs stops the search at 31 trial-epochs (of up to 90)"]
    assert e.max == 31 + 3 + 9  # the search's share, what concurrent trials finish, the repeats


def test_trials_at_once():
    assert slots(_spec(resources_per_trial={"cpu": 1}), 2, 0) == 2
    assert slots(_spec(resources_per_trial={"cpu": 1, "gpu": 0.25}, max_concurrent_trials=8), 16, 1) == 4
    plan = make_plan(
        _spec(resources_per_trial={"cpu": 1, "gpu": 1}),
        "synthetic:100",
        None,
        None,
        TWO_CPUS,
        throughput=Throughput(1.0, None, "test"),
    )
    assert plan.concurrent_trials == 0 and "no trial fits" in plan.warnings[0]


def test_wall_time_and_a_time_budget_that_cuts():
    spec = _spec(scheduler={"type": "fifo"}, time_budget_s=60, max_concurrent_trials=2)
    plan = make_plan(spec, "synthetic:1000", None, None, TWO_CPUS, throughput=Throughput(10.0, 500.0, "test"))
    # 4 trials x 9 epochs x 10 s over 2 slots, after the startup (20 s) and two waves of trial
    # starts (2 x 1.3 s): 20 + 2.6 + 36 * 10 / 2 expected and 20 + 2.6 + 2 * 9 * 10 at worst
    # without the budget; it ends them at 60 s
    assert plan.wall_s_expected == plan.wall_s_worst == pytest.approx(20 + 60)
    assert plan.wall_s_best <= plan.wall_s_worst
    assert any("time_budget_s stops the sweep at 60 s; without it the worst case is 203 s" in c for c in plan.cuts)
    assert any("exceeds time_budget_s" in w for w in plan.warnings)
    assert plan.images.expected == 36 * 1000  # 800 training + 200 validation images per epoch
    assert plan.peak_mb_per_trial == 500.0 and plan.memory_fits


def test_the_plan_reads_the_store_within_2_s_and_changes_nothing(tmp_path):
    settings, store = measured_store(tmp_path)
    jobs = FakeJobs(store)
    client = TestClient(create_app(settings, jobs))
    before = store.list_sweeps()[1]
    body = BASE | {"scheduler": {"type": "fifo"}, "resources_per_trial": {"cpu": 1}}
    r = client.post("/sweeps/plan", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["throughput_source"].startswith("store: median of 2 measured epochs")  # epoch 1 is left out
    # 2 s for 1,250 images (synthetic:1250: 1,000 train, 250 val); this service's data: 50,000 per epoch
    assert plan["seconds_per_epoch"] == pytest.approx(2.0 * 50_000 / 1250)
    assert store.list_sweeps()[1] == before and jobs.created == []
    assert client.post("/sweeps/plan", json=body).status_code == 401


def test_post_sweeps_keeps_its_plan_and_warns(tmp_path):
    settings, store = measured_store(tmp_path)
    client = TestClient(create_app(settings, FakeJobs(store)))
    body = BASE | {"scheduler": {"type": "fifo"}, "resources_per_trial": {"cpu": 1}, "time_budget_s": 30}
    r = client.post("/sweeps", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    out = r.json()
    assert any("exceeds time_budget_s" in w for w in out["warnings"])
    got = client.get(f"/sweeps/{out['id']}").json()
    assert got["plan"]["trials"] == 4 and got["plan_actual"] is None  # it has not ended
    lifecycle.fail(store, out["id"], lifecycle.Reason.DRIVER_ERROR, "stopped for the test")
    ended = client.get(f"/sweeps/{out['id']}").json()["plan_actual"]
    assert ended["estimated_s"] == pytest.approx(got["plan"]["wall_s_expected"]) and ended["actual_s"] >= 0


def test_run_dry_run_and_plan_print_the_plan_and_store_nothing(tmp_path, capsys):
    from cifar_sweeps.cli import main

    settings, store = measured_store(tmp_path)
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(BASE | {"scheduler": {"type": "fifo"}, "resources_per_trial": {"cpu": 1}}))
    before = store.list_sweeps()[1]
    assert main(["run", str(spec), "--dry-run", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        out.startswith("plan: 4 trials; trial-epochs 36 min, 36 expected, 36 max") and "s per epoch from store" in out
    )
    assert main(["plan", str(spec), "--results-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == 4
    assert store.list_sweeps()[1] == before


def test_a_cold_start_counts_the_decoding_of_the_images(tmp_path):
    """The first sweep on an archive waits for its images to be decoded (about 15 s for
    CIFAR-10's 60,000 PNGs on two cores); once the cache holds them at the spec's size, not."""
    from cifar_sweeps.training.data import _cache_file

    archive = tmp_path / "cifar10-png.tar.xz"
    archive.write_bytes(b"an archive")
    cache = tmp_path / "cache"
    spec = _spec(scheduler={"type": "fifo"}, max_concurrent_trials=2)
    tp = Throughput(10.0, 500.0, "test")
    cold = make_plan(spec, str(archive), None, cache / "throughput.json", TWO_CPUS, throughput=tp)
    assert "15 s decoding the images" in cold.startup
    _cache_file(str(archive), cache, 32).parent.mkdir(parents=True, exist_ok=True)
    _cache_file(str(archive), cache, 32).write_bytes(b"")
    warm = make_plan(spec, str(archive), None, cache / "throughput.json", TWO_CPUS, throughput=tp)
    assert "the data decoded already" in warm.startup
    assert cold.wall_s_expected == pytest.approx(warm.wall_s_expected + 60_000 / 4000)


def test_a_throughput_file_shared_by_two_results_folders_spares_the_second_its_probe(tmp_path):
    """CIFAR_SWEEPS_THROUGHPUT_FILE: a shape probed for one results folder is read for
    another on the same machine; without it each folder keeps its own (and has no figure)."""
    from cifar_sweeps.analysis.plan import plan_for
    from cifar_sweeps.analysis.throughput import key_of, remember, trial_config
    from cifar_sweeps.settings import Settings
    from cifar_sweeps.store.queries import get_store

    spec = _spec(scheduler={"type": "fifo"}, resources_per_trial={"cpu": 1})
    shared = tmp_path / "machine" / "throughput.json"
    remember(
        shared, key_of(trial_config(spec)), {"train_images_per_s": 500.0, "eval_images_per_s": 2000.0, "peak_mb": 300}
    )
    for folder, source in (("a", "a probe kept from an earlier plan (500 train images/s)"), ("b", None)):
        over = {"throughput_file": str(shared)} if source else {}
        settings = Settings(results_dir=tmp_path / folder, data="synthetic:1200", **over)
        store = get_store(settings.resolved_store_url())  # empty: nothing measured
        plan = plan_for(spec, settings, store, TWO_CPUS, run_probe=False)
        assert plan.throughput_source == source if source else not plan.throughput_source.startswith("a probe"), plan
    assert Settings(throughput_file="").throughputs == Settings().cache_dir / "throughput.json"  # empty: the default
    assert Settings(throughput_file="t.json").throughputs.is_absolute()  # a job's driver runs elsewhere
