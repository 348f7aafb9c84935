"""The service end to end: a real uvicorn server on a free port, a real Ray head, real
Ray jobs running `cifar-sweeps run`, and the page in real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from cifar_sweeps.training.train import load_model_file
from tests.helpers.ray_head import VENV_BIN, cli_env, free_port
from tests.helpers.served_process import launch_chromium, record_page_errors, serve_process, wait_status

pytestmark = pytest.mark.slow
SPEC = {
    "name": "svc-e2e",
    "num_samples": 4,
    "max_concurrent_trials": 2,
    "search": {"algorithm": "hyperopt", "seed": 2, "n_initial_points": 2},
    "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    "fixed": {"model": "simple_cnn", "epochs": 3, "batch_size": 64},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.05}},
}


@pytest.fixture(scope="module")
def service(ray_head, tmp_path_factory):
    results = tmp_path_factory.mktemp("svc") / "results"
    port = free_port()
    env = cli_env(ray_head, results, RAY_ADDRESS=ray_head.dashboard_url, CIFAR_SWEEPS_DATA="synthetic:1500")
    log = open(results.parent / "serve.log", "w")  # noqa: SIM115 (closed below)
    proc, base = serve_process(env, port, log)
    yield base, results, ray_head
    proc.terminate()
    proc.wait(30)
    log.close()


def test_post_sweep_runs_as_ray_job(service, tmp_path):
    base, results, head = service
    r = httpx.post(f"{base}/sweeps", json=SPEC, timeout=30)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "queued" and body["ray_job_id"]
    seen = ["queued", *wait_status(base, body["id"])]
    assert seen[-1] == "succeeded", seen
    assert "running" in seen and seen.index("queued") < seen.index("running")

    board = httpx.get(f"{base}/leaderboard", params={"sweep_id": body["id"]}).json()
    assert board["total"] == 4
    accs = [t["val_acc"] for t in board["items"]]
    assert accs == sorted(accs, reverse=True)
    best = board["items"][0]
    assert best["test_acc"] is not None and best["checkpoint_url"] == f"/trials/{best['trial_id']}/checkpoint"
    model_file = tmp_path / "best.pt"
    model_file.write_bytes(httpx.get(base + best["checkpoint_url"], timeout=30).content)  # links are relative
    model = load_model_file(model_file)
    assert type(model).__name__ == "ConvThenFC"
    _predict_matches_the_cli(base, best["trial_id"], model_file, tmp_path)

    trial = httpx.get(f"{base}/trials/{best['trial_id']}").json()
    assert len(trial["curves"]) == trial["epochs"] >= 1

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(head.dashboard_url)
    deadline = time.time() + 60  # the driver writes "succeeded" just before its process exits
    while client.get_job_status(body["ray_job_id"]) == JobStatus.RUNNING and time.time() < deadline:
        time.sleep(0.5)
    job = client.get_job_info(body["ray_job_id"])
    assert job.status == JobStatus.SUCCEEDED and body["id"] in job.entrypoint


def _predict_matches_the_cli(base: str, trial_id: str, model_file: Path, tmp: Path) -> None:
    """The sweep's best checkpoint classifies images over HTTP as `cifar-sweeps predict` does."""
    from PIL import Image

    from cifar_sweeps.training.data import synthetic

    paths = []
    for i, img in enumerate(synthetic(20, 10, seed=3).x_test[:4]):
        paths.append(tmp / f"test{i}.png")
        Image.fromarray(img).resize((48, 48)).save(paths[-1])
    r = httpx.post(
        f"{base}/trials/{trial_id}/predict",
        timeout=60,
        files=[("images", (p.name, p.read_bytes(), "image/png")) for p in paths],
    )
    assert r.status_code == 200, r.text
    cli = subprocess.run(
        [str(VENV_BIN / "cifar-sweeps"), "predict", str(model_file), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    for line, pred in zip(cli.stdout.splitlines(), r.json()["predictions"], strict=True):
        top = pred["top"][0]
        assert line == f"{tmp / pred['file']}: {top['label']} ({top['prob']:.3f})", (line, top)


def _sweep_count(base: str) -> int:
    return httpx.get(f"{base}/sweeps", params={"limit": 1}).json()["total"]


def _edit(page, spec: dict) -> None:
    page.fill("#e-spec", json.dumps(spec, indent=2))
    page.click("#e-submit")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_page_in_headless_chromium(service, tmp_path):
    """The page on a real finished sweep: leaderboard, curves, the analysis charts (plotly.js
    served by the app), "run again with edits" (an invalid edit shows the 422 inline and
    stores nothing; a valid one becomes a sweep that runs), then the analysis of that sweep
    with its importance bars. No page error, and nothing loaded from outside the app."""
    from playwright.sync_api import sync_playwright

    base, _, _ = service
    total = httpx.get(f"{base}/leaderboard").json()["total"]
    assert total > 0, "run after a sweep has finished"
    errors, outside = [], []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        record_page_errors(page, errors, lambda status: status in (200, 201, 409, 422))
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((base, "data:")) else None)
        page.goto(base)
        page.wait_for_selector("#board tbody tr")
        assert page.locator("#board tbody tr").count() == min(total, 200)
        accs = [float(x) for x in page.locator("#board tbody td.val-acc").all_inner_texts()]
        assert accs == sorted(accs, reverse=True)
        page.wait_for_selector("#chart-acc .scatterlayer .trace")  # the learning curves, drawn by plotly
        # The ticked trials (the best three at first) side by side: scores, then what differs.
        page.wait_for_selector("#c-table:not([hidden]) tbody tr.differ")
        assert "lr" in page.locator("#c-table tbody tr.differ th").all_inner_texts()
        assert page.locator("#c-table thead th").count() == 1 + min(total, 3)
        page.wait_for_selector("#a-parcoords .parcoords")
        page.wait_for_selector("#a-slices .scatterlayer .trace")
        page.locator("#board th[data-key=model]").click()  # sorting works in the page

        first = page.locator("#sweeps tbody tr").first
        source = first.get_attribute("data-sweep")
        first.locator("button.again").click()
        spec = json.loads(page.input_value("#e-spec"))
        assert spec["name"] == SPEC["name"] and spec["params"]["lr"]["low"] == SPEC["params"]["lr"]["low"]
        before = _sweep_count(base)
        spec["params"]["lr"]["low"] = -0.5  # an invalid edit
        _edit(page, spec)
        page.wait_for_selector("#e-error:not([hidden])")
        assert "params.lr" in page.inner_text("#e-error") and "422" in page.inner_text("#e-error")
        assert _sweep_count(base) == before  # nothing stored

        spec.update(
            name="svc-again",
            num_samples=6,
            max_concurrent_trials=2,
            scheduler={"type": "fifo"},
            fixed={"model": "mlp", "epochs": 2, "batch_size": 64},
            params={
                "lr": {"type": "loguniform", "low": 0.001, "high": 0.1},
                "momentum": {"type": "uniform", "low": 0.5, "high": 0.95},
            },
        )
        _edit(page, spec)
        page.wait_for_selector("#e-result:has-text('created')")
        new_id = page.inner_text("#e-result").split()[1]
        assert new_id != source and _sweep_count(base) == before + 1
        page.wait_for_selector(f"#sweeps tbody tr[data-sweep='{new_id}']")  # the new sweep appears
        assert wait_status(base, new_id)[-1] == "succeeded"

        page.select_option("#a-sweep", new_id)
        page.wait_for_selector("#a-importance .barlayer .trace", timeout=60_000)
        page.wait_for_selector("#a-parcoords .parcoords")
        assert page.locator("#a-parcoords g.axis").count() == 3  # lr, momentum, the metric
        assert page.locator("#a-slices .scatterlayer .trace").count() == 2
        assert "6 trials" in page.inner_text("#a-note")
        page.locator("#analysis").screenshot(path=str(tmp_path / "analysis.png"))
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        browser.close()
    assert errors == [] and outside == []
    assert (tmp_path / "analysis.png").stat().st_size > 10_000 and (tmp_path / "page.png").stat().st_size > 10_000
    shots = os.environ.get("CIFAR_SWEEPS_SCREENSHOTS")  # where the docs' screenshot is refreshed from
    if shots:
        shutil.copy(tmp_path / "analysis.png", Path(shots) / "analysis.png")


def test_an_errored_trial_says_why_in_the_leaderboard_and_on_the_page(service):
    """A trial whose loss goes NaN (a learning rate far too high): the leaderboard item
    carries the reason's line, GET /trials/{id} the whole error, and the page shows the
    reason under the trial's status."""
    from playwright.sync_api import sync_playwright

    base, _, _ = service
    spec = {
        "name": "too-hot",
        "num_samples": 1,
        "max_failures": 0,
        "scheduler": {"type": "fifo"},
        "fixed": {"model": "mlp", "epochs": 2, "batch_size": 32},
        "params": {"lr": {"type": "choice", "values": [1.0e6]}},
    }
    r = httpx.post(f"{base}/sweeps", json=spec, timeout=30)
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    wait_status(base, sweep_id)
    (item,) = httpx.get(f"{base}/leaderboard", params={"sweep_id": sweep_id}).json()["items"]
    assert item["status"] == "errored"
    assert "NonFiniteLossError" in item["error"]
    assert "try a lower learning rate" in item["error"] and "\n" not in item["error"]
    full = httpx.get(f"{base}/trials/{item['trial_id']}").json()["error"]
    assert item["error"] in full and len(full) > len(item["error"])
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.goto(base)
        page.select_option("#f-status", "errored")
        row = page.locator(f"#board tbody tr[data-trial='{item['trial_id']}']")
        row.wait_for()
        reason = row.locator(".error-reason")
        assert "try a lower learning rate" in reason.inner_text()
        assert reason.is_visible()
        browser.close()


def test_postgres_store_and_second_storage_folder(ray_head, postgres, tmp_path):
    """The store on PostgreSQL, Tune results on a second folder: the sweep shows up in
    GET /leaderboard and its checkpoints download from that folder."""
    results, storage = tmp_path / "results", tmp_path / "shared-storage"
    url = postgres.new_database("svc_e2e")
    port = free_port()
    env = cli_env(
        ray_head,
        results,
        RAY_ADDRESS=ray_head.dashboard_url,
        CIFAR_SWEEPS_DATA="synthetic:600",
        CIFAR_SWEEPS_STORE_URL=url,
        CIFAR_SWEEPS_STORAGE_PATH=str(storage),
    )
    proc, base = serve_process(env, port)
    try:
        spec = {**SPEC, "name": "pg-e2e", "num_samples": 2, "fixed": {"model": "mlp", "epochs": 2, "batch_size": 64}}
        r = httpx.post(f"{base}/sweeps", json=spec, timeout=30)
        assert r.status_code == 201, r.text
        seen = wait_status(base, r.json()["id"])
        assert seen[-1] == "succeeded", seen
        board = httpx.get(f"{base}/leaderboard").json()
        assert board["total"] == 2
        from cifar_sweeps.store.queries import Store

        for item in board["items"]:
            trial = Store(url).get_trial(item["trial_id"])
            assert trial.checkpoint_path.startswith(str(storage))
            blob = httpx.get(base + item["checkpoint_url"], timeout=30)
            assert blob.status_code == 200 and len(blob.content) > 1000
        assert not (results / "ray").exists()  # nothing went to the default folder
    finally:
        proc.terminate()
        proc.wait(30)
