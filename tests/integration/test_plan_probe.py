"""The plan's throughput probe, a process of its own: an answer within 30 s that is kept, a
probe past its time that gives an unknown figure, and the page showing a preset's plan
before submit."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.schema import load_spec_file
from tests.helpers.jobs import FakeJobs
from tests.helpers.plans import BASE
from tests.helpers.specs import AUTH


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

    from tests.helpers.ray_head import shared_throughputs
    from tests.helpers.served_process import launch_chromium
    from tests.helpers.served_thread import serve_in_thread

    # The probe's own limit is 60 s; a loaded test machine can need more for the first one.
    monkeypatch.setenv("CIFAR_SWEEPS_PROBE_TIMEOUT_S", "240")
    # The preset's shape probed once a test run (the docs' `plan quickstart` probes it too).
    monkeypatch.setenv("CIFAR_SWEEPS_THROUGHPUT_FILE", str(shared_throughputs()))
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
