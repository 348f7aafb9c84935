"""The cost plan: the arithmetic on fixed specs (fifo, ASHA's rungs, a budget, repeats,
concurrency, a time budget), throughput from the store and from a probe, and no side
effect (no sweep stored, no Ray job submitted)."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.analysis.plan import make_plan, per_trial_epochs, slots, trial_epochs
from cifar_sweeps.analysis.schemas import PlanResources
from cifar_sweeps.analysis.throughput import Throughput
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.schema import load_spec_file, parse_spec
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


@pytest.mark.integration
def test_a_probe_answers_within_30_s_and_is_kept(tmp_path):
    settings = Settings(results_dir=tmp_path, api_token="s3cret-token")
    store = get_store(settings.resolved_store_url())
    client = TestClient(create_app(settings, FakeJobs(store)))
    body = BASE | {"fixed": {"model": "simple_cnn", "epochs": 2, "batch_size": 32}, "resources_per_trial": {"cpu": 1}}
    t0 = time.perf_counter()
    first = client.post("/sweeps/plan", json=body, headers=AUTH).json()
    took = time.perf_counter() - t0
    assert first["throughput_source"].startswith("a probe just now") and first["seconds_per_epoch"] > 0, first
    assert took < 30, took
    again = client.post("/sweeps/plan", json=body, headers=AUTH).json()
    assert (
        again["throughput_source"].startswith("a probe kept")
        and again["seconds_per_epoch"] == first["seconds_per_epoch"]
    )
    assert first["peak_mb_per_trial"] > 100 and first["memory_source"] == "the probe's peak"
    assert store.list_sweeps()[1] == 0


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_the_page_shows_a_presets_plan_before_submit(tmp_path, monkeypatch):
    """Headless Chromium: choose a preset in "Run a sweep"; its plan (trials, trial-epochs,
    wall time from a probe, memory) appears under it, nothing is submitted, no page error."""
    from playwright.sync_api import sync_playwright

    from tests.helpers.served_process import launch_chromium
    from tests.helpers.served_thread import serve_in_thread

    # The probe's own limit is 60 s; a loaded test machine can need more for the first one.
    monkeypatch.setenv("CIFAR_SWEEPS_PROBE_TIMEOUT_S", "240")
    server, thread, base = serve_in_thread(tmp_path / "results")
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(base)
            page.wait_for_selector("#e-preset option[value=quickstart]", state="attached")
            page.select_option("#e-preset", "quickstart")
            # a locator, not wait_for_function: the page's CSP forbids the eval that one runs
            page.locator("#e-plan", has_text="wall time").wait_for(timeout=300_000)
            text = page.inner_text("#e-plan")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(30)
    trials = load_spec_file("quickstart").num_samples
    assert f"plan: {trials} trials" in text and "expected" in text and "probe" in text, text
    assert "MiB per trial" in text, text
    assert errors == []
    assert get_store(Settings(results_dir=tmp_path / "results").resolved_store_url()).list_sweeps()[1] == 0


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


@pytest.mark.slow
def test_planning_on_a_real_cluster_submits_no_job(ray_head, tmp_path):
    """The service wired to a real Ray head: a plan (with its probe) leaves the Ray job list
    and the store as they were."""
    from ray.job_submission import JobSubmissionClient

    settings = Settings(results_dir=tmp_path, api_token="s3cret-token", dashboard_url=ray_head.dashboard_url)
    client = TestClient(create_app(settings))
    ray_jobs = JobSubmissionClient(ray_head.dashboard_url)
    before = {j.submission_id for j in ray_jobs.list_jobs()}
    body = BASE | {"fixed": {"model": "mlp", "epochs": 2, "batch_size": 64}, "resources_per_trial": {"cpu": 1}}
    r = client.post("/sweeps/plan", json=body, headers=AUTH)
    assert r.status_code == 200 and r.json()["seconds_per_epoch"] > 0, r.text
    assert {j.submission_id for j in ray_jobs.list_jobs()} == before
    assert get_store(settings.resolved_store_url()).list_sweeps()[1] == 0


@pytest.mark.integration
def test_a_probe_past_its_time_gives_an_unknown_figure_and_the_command_goes_on(tmp_path, monkeypatch, capsys):
    """A loaded machine: the probe is stopped (its process group killed) at the timeout, the
    plan says "unknown" with a warning, `plan` exits 0, and the next command (a process of
    its own) reads the failure from throughput.json instead of waiting again."""
    from cifar_sweeps.cli import main

    monkeypatch.setenv("CIFAR_SWEEPS_PROBE_TIMEOUT_S", "0.5")  # torch's import alone takes longer
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(BASE | {"fixed": {"model": "simple_cnn", "epochs": 2, "batch_size": 32}}))
    args = ["plan", str(spec), "--results-dir", str(tmp_path), "--data", "synthetic:500", "--json"]
    assert main(args) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["seconds_per_epoch"] is None and "took over 0.5 s and was stopped" in plan["throughput_source"]
    assert any("the sweep can still run" in w for w in plan["warnings"])
    kept = json.loads((tmp_path / "cache" / "throughput.json").read_text())
    assert [v["error"] for v in kept.values()] and all("at" in v for v in kept.values())
    import cifar_sweeps.subprocs

    def no_probe(*a, **k):
        raise AssertionError("a remembered failure started a probe")

    monkeypatch.setattr(cifar_sweeps.subprocs, "run_torch", no_probe)
    assert main(args[:-1]) == 0  # read from the file: no torch process started
    assert "wall time: unknown (unknown: the probe of this trial shape took over 0.5 s" in capsys.readouterr().out


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
