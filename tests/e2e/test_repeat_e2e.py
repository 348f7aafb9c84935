"""Repeats over seeds end to end, on a real Ray head and synthetic data: a 6-trial sweep with
`repeat: {top: 2, seeds: 3}`, its driver SIGKILLed in the repeat phase, `cifar-sweeps resume`;
then the grouped leaderboard from a real HTTP server, its CSV and the CLI, each group's
mean and interval recomputed here from its members; then `cifar-sweeps repeat` on the ended
sweep, and `cifar-sweeps refit` (the sweep had none)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import statistics
from pathlib import Path

import httpx
import pytest
from scipy import stats

from cifar_sweeps.analysis.ranking import group_key
from tests.helpers.served_thread import serve_in_thread
from tests.helpers.sweeps import open_store, run_cli, spawn_run, sweep_env, wait_for, write_spec

pytestmark = pytest.mark.slow
EPOCHS = 8


def _repeat_dirs(results: Path, sweep_id: str) -> dict[str, int]:
    """How many Tune trial folders trained each repeat id, over every driver's run."""
    counts: dict[str, int] = {}
    for params in (results / "ray" / f"{sweep_id}-repeats").glob("trial_*/params.json"):
        rid = json.loads(params.read_text())["run"]["repeat_id"]
        if (params.parent / "result.json").exists() and (params.parent / "result.json").read_text().strip():
            counts[rid] = counts.get(rid, 0) + 1
    return counts


def _check_page(base: str, api: dict) -> None:
    """The page's grouped view in headless Chromium: one row per configuration, the means
    with their error bars drawn by plotly, the verdict on #1 against #2, no page error."""
    from playwright.sync_api import sync_playwright

    from tests.helpers.served_process import launch_chromium, record_page_errors

    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        record_page_errors(page, errors, lambda status: status < 500 or status == 503)  # 503: one importance at a time
        page.goto(base)
        page.wait_for_selector("#g-board tbody tr")
        page.wait_for_selector("#g-chart .scatterlayer .trace")
        assert page.locator("#g-board tbody tr").count() == api["total"]
        bars = page.locator("#g-chart g.errorbar path").count()
        assert bars >= 2, bars  # the two groups of three runs have their intervals drawn
        verdict = page.inner_text("#g-verdict")
        first = api["items"][0]
        expected = {False: "not significantly better", True: "better than #2", None: "not compared"}
        assert expected[first["distinct_from_next"]] in verdict, verdict
        assert (page.locator("#g-board tr.tie").count() == 1) == (first["distinct_from_next"] is False)
        browser.close()
    assert errors == []


def _check_group(item: dict, store, mean_key: str = "val_acc") -> None:
    """The group's figures, recomputed here from its member trials."""
    accs = [store.get_trial(t).val_acc for t in item["trials"]]
    n, mean, sd = len(accs), statistics.fmean(accs), statistics.stdev(accs)
    # scipy's interval of identical runs is (nan, nan); its width is 0.
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=sd / n**0.5) if sd > 0 else (mean, mean)
    assert item["n"] == n and item[f"{mean_key}_mean"] == pytest.approx(mean, abs=1e-12)
    assert item[f"{mean_key}_std"] == pytest.approx(sd, rel=1e-9)
    assert (item[f"{mean_key}_low"], item[f"{mean_key}_high"]) == (pytest.approx(low), pytest.approx(high))


def test_repeats_survive_a_kill_and_the_grouped_views_agree(ray_head, tmp_path):
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        num_samples=6,
        search={"algorithm": "hyperopt", "seed": 3, "n_initial_points": 3},
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        fixed={"model": "mlp", "epochs": EPOCHS, "batch_size": 64},
        repeat={"top": 2, "seeds": 3},
    )
    env = sweep_env(ray_head, results)
    driver = spawn_run(spec, env)
    store = open_store(results)

    def in_the_repeats(trials):
        reps = [t for t in trials if t.repeat_of]
        done = [t for t in reps if t.status == "terminated"]
        return done if done and any(t.status == "running" and 1 <= t.epochs < EPOCHS - 2 for t in reps) else []

    sweep_id, finished = wait_for(store, in_the_repeats, timeout=600)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(30)
    before = {t.id: (t.finished_at, t.epochs, t.val_acc) for t in finished}

    p = run_cli(["resume", sweep_id], env)  # what the user types after the kill
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sweep, trials = store.get_sweep(sweep_id), store.trials(sweep_id)
    assert sweep.status == "succeeded"
    search, repeats = [t for t in trials if not t.repeat_of], [t for t in trials if t.repeat_of]
    assert len(search) == 6 and len(repeats) == 4  # 2 configurations x 2 more seeds, no more
    assert all(t.status == "terminated" and t.epochs == EPOCHS for t in repeats)  # full epochs, never stopped early
    for tid, (at, epochs, acc) in before.items():  # a repeat finished before the kill stands as it was
        t = store.get_trial(tid)
        assert (t.finished_at, t.epochs, t.val_acc) == (at, epochs, acc)
    dirs = _repeat_dirs(results, sweep_id)
    assert all(dirs[t.tune_trial_id] == 1 for t in finished), dirs  # none trained twice
    sources = {t.repeat_of for t in repeats}
    assert len(sources) == 2
    for src in sources:
        mine = [t for t in repeats if t.repeat_of == src]
        source = store.get_trial(src)
        assert {group_key(sweep_id, t.config) for t in mine} == {group_key(sweep_id, source.config)}
        assert len({t.config.get("seed", 0) for t in [source, *mine]}) == 3

    server, thread, base = serve_in_thread(results)
    try:
        api = httpx.get(f"{base}/leaderboard", params={"group": "config", "sweep_id": sweep_id}).json()
        api_csv = httpx.get(f"{base}/leaderboard.csv", params={"group": "config", "sweep_id": sweep_id}).text
        if shutil.which("chromium"):
            _check_page(base, api)
    finally:
        server.should_exit = True
        thread.join(30)
    top2 = api["items"][:2]
    assert [it["n"] for it in top2] == [3, 3] and {it["best_trial_id"] for it in top2} <= {
        t.id for t in trials if t.id in sources or t.repeat_of
    }
    assert api["items"][0]["val_acc_mean"] >= api["items"][1]["val_acc_mean"]
    for it in top2:
        _check_group(it, store)
    assert all(it["n"] == 1 and it["val_acc_low"] is None and "one run" in it["note"] for it in api["items"][2:])
    rows = list(csv.DictReader(io.StringIO(api_csv)))
    assert [(r["rank"], r["n"], r["trials"]) for r in rows] == [
        (str(it["rank"]), str(it["n"]), " ".join(it["trials"])) for it in api["items"]
    ]
    p = run_cli(["leaderboard", "--group", "--json", "--sweep", sweep_id, "--top", "100"], env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout)["items"] == api["items"]
    p = run_cli(["leaderboard", "--group", "--sweep", sweep_id], env)
    assert "[" in p.stdout and "configurations" in p.stdout

    # The ended sweep, asked for one more seed of its best configuration: one new repeat; then
    # its refit. Each runs in the terminal's process while a service on the same store drains
    # its queue into the Ray head every 3 s: the sweep is the terminal's, and no job runs it.
    server, thread, base = serve_in_thread(results, dashboard_url=ray_head.dashboard_url)
    try:
        _repeat_and_refit(sweep_id, trials, before, store, env)
    finally:
        server.should_exit = True
        thread.join(30)
    assert store.get_sweep(sweep_id).ray_job_id is None


def _repeat_and_refit(sweep_id: str, trials: list, before: dict, store, env: dict) -> None:
    p = run_cli(["repeat", sweep_id, "--top", "1", "--seeds", "4"], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    after = store.trials(sweep_id)
    assert len(after) == len(trials) + 1 and store.get_sweep(sweep_id).status == "succeeded"
    for tid, (at, _, _) in before.items():
        assert store.get_trial(tid).finished_at == at

    # The sweep had no refit: `cifar-sweeps refit` trains its best configuration on every
    # training image, a row of its own linked to its source; the rows before it stand.
    before_refit = {t.id: t.finished_at for t in store.trials(sweep_id)}
    p = run_cli(["refit", sweep_id], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = store.trials(sweep_id)
    (refit,) = [t for t in rows if t.refit_of]
    assert len(rows) == len(before_refit) + 1 and store.get_sweep(sweep_id).spec["refit"] is True
    assert refit.status == "terminated" and refit.test_acc is not None and refit.refit_of in before_refit
    assert all(store.get_trial(tid).finished_at == at for tid, at in before_refit.items())
    p = run_cli(["refit", sweep_id], env)  # asked twice: refused, nothing changes
    assert p.returncode != 0 and "has its refit already" in p.stderr, p.stderr[-2000:]
    assert len(store.trials(sweep_id)) == len(rows) and store.get_sweep(sweep_id).status == "succeeded"
