"""Population-based training on a real Ray head: four trials, two at an lr too small to learn
(1e-5) and two at 0.1; every 2 epochs the bottom half goes on from the top half's weights
with the lr scaled by 0.8 or 1.2. A slow trial's exploit is recorded on its row, its lr
changes in the middle of its run (the schedule is constant, so only PBT changes it), and the
API and the page (headless Chromium) show both."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.helpers.served_thread import serve_in_thread
from tests.helpers.sweeps import open_store, run_cli, sweep_env, write_spec

pytestmark = pytest.mark.slow
SLOW, FAST = 1e-5, 0.1


def _check_page(base: str, trial_id: str, exploits: int) -> None:
    """The row's pbt tag, and its lr per epoch drawn once the row is ticked."""
    from playwright.sync_api import sync_playwright

    from tests.helpers.served_process import launch_chromium, record_page_errors

    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        record_page_errors(page, errors, lambda status: status < 500 or status == 503)
        page.goto(base)
        row = page.locator(f'#board tbody tr[data-trial="{trial_id}"]')
        row.wait_for()
        tag = row.locator(".pbt-tag")
        assert tag.inner_text() == f"pbt: {exploits} exploit{'s' if exploits > 1 else ''}"
        assert "→" in tag.get_attribute("title")
        row.locator("input[type=checkbox]").check()
        page.wait_for_selector("#chart-lr .scatterlayer .trace")
        browser.close()
    assert errors == [], errors


def test_a_pbt_sweep_records_its_exploits_and_changes_an_lr_mid_run(ray_head, tmp_path):
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=4,
        max_concurrent_trials=4,
        resources_per_trial={"cpu": 0.5, "gpu": 0},
        search={"algorithm": "random", "seed": 0, "points_to_evaluate": [{"lr": x} for x in (SLOW, FAST, SLOW, FAST)]},
        # synch: ranked when all four stand at epoch 2 (and 4), so the slow pair exploits however
        # the trials' starts fall on a busy machine (asynchronous PBT skips an exploit when no
        # fast trial has been checkpointed at a perturbation point yet).
        scheduler={
            "type": "pbt",
            "perturbation_interval": 2,
            "quantile_fraction": 0.5,
            "resample_probability": 0.0,
            "synch": True,
        },
        fixed={"model": "mlp", "epochs": 6, "batch_size": 64, "lr_schedule": "none"},
        params={"lr": {"type": "loguniform", "low": 1e-6, "high": 0.5}},
    )
    p = run_cli(["run", str(spec), "--data", "synthetic:600"], sweep_env(ray_head, results))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = open_store(results)
    (sweep,), _ = store.list_sweeps()
    trials = store.trials(sweep.id)
    assert len(trials) == 4 and all(t.status == "terminated" and t.epochs == 6 for t in trials)
    exploited = [t for t in trials if t.exploits]
    assert exploited, "no trial took another's weights"
    # never at a trial's last epoch: it would end as a copy, trained no further
    assert all(x["at_epoch"] in (2, 4) for t in exploited for x in t.exploits), [t.exploits for t in exploited]
    t = exploited[0]
    first, last = t.exploits[0], t.exploits[-1]
    assert first["source"] != t.id and first["source"] in {x.id for x in trials}
    lrs = {e.epoch: e.lr for e in store.epochs(t.id)}
    # Before its first exploit it trained at its own lr; from the last one on, at the new one.
    assert lrs[1] == pytest.approx(first["before"]["lr"])
    assert lrs[6] == pytest.approx(last["after"]["lr"]) and lrs[6] != pytest.approx(lrs[1])
    assert t.config["lr"] == pytest.approx(last["after"]["lr"])  # the row's config: what it ended with
    server, thread, base = serve_in_thread(results)
    try:
        got = httpx.get(f"{base}/trials/{t.id}").json()
        assert got["exploits"] == t.exploits and [c["lr"] for c in got["curves"]] == [lrs[e] for e in sorted(lrs)]
        board = httpx.get(f"{base}/leaderboard", params={"sweep_id": sweep.id}).json()["items"]
        assert {it["trial_id"]: len(it["exploits"]) for it in board} == {x.id: len(x.exploits or []) for x in trials}
        if shutil.which("chromium"):
            _check_page(base, t.id, len(t.exploits))
    finally:
        server.should_exit = True
        thread.join(30)
