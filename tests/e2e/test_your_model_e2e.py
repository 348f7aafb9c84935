"""Your model, your images, the model out, end to end: a real Ray head, a real server, real
jobs. The example plug-in package is pip-installed (editable) and swept with a searched
model argument, its best trial exported to ONNX over HTTP and checked by onnxruntime; an
image folder of 3 classes at 48x48 is swept with num_classes 3, and `predict`, the API and
the page in Chromium name its classes; the Python API's example runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from cifar_sweeps.training.export import read_metadata, with_preprocessing
from cifar_sweeps.training.train import read_model_file
from tests.helpers.paths import REPO
from tests.helpers.ray_head import VENV_BIN, cli_env, free_port
from tests.helpers.served_process import launch_chromium, record_page_errors, serve_process, wait_status

pytestmark = pytest.mark.slow
PLUGIN = REPO / "examples" / "tinynet-plugin"


def _pip(*args: str) -> None:
    p = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]


@pytest.fixture(scope="module")
def tinynet():
    """The example package, installed as a user would (editable), and removed after."""
    import importlib
    import site
    import sysconfig

    _pip("install", "-q", "--no-deps", "--no-build-isolation", "-e", str(PLUGIN))
    site.addsitedir(sysconfig.get_paths()["purelib"])  # this process reads the new .pth, as a new one would
    importlib.invalidate_caches()
    try:
        yield
    finally:
        _pip("uninstall", "-q", "-y", "cifar-sweeps-tinynet")


@pytest.fixture
def served(ray_head, tmp_path):
    """A `cifar-sweeps serve` on the session's Ray head, data from `served.data`."""
    procs = []

    def start(data: str):
        results = tmp_path / "results"
        env = cli_env(ray_head, results, RAY_ADDRESS=ray_head.dashboard_url, CIFAR_SWEEPS_DATA=data)
        log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 (closed below)
        proc, base = serve_process(env, free_port(), log)
        procs.append((proc, log))
        return base, env

    yield start
    for proc, log in procs:
        proc.terminate()
        proc.wait(30)
        log.close()


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "cifar-sweeps"), *args], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
    )


def test_an_installed_plugin_is_listed_swept_with_a_searched_argument_and_exported(tinynet, served, tmp_path):
    base, env = served("synthetic:800")
    listed = json.loads(_cli(env, "models", "--json").stdout)
    entry = next(m for m in listed if m["name"] == "tinynet")
    assert entry["kind"] == "plugin" and entry["source"] == "cifar-sweeps-tinynet" and entry["version"] == "0.1.0"
    assert any(m["name"] == "tinynet" for m in httpx.get(f"{base}/models").json()["items"])

    spec = json.loads((REPO / "examples" / "tinynet-sweep.json").read_text())
    too_wide = {**spec, "params": {**spec["params"], "model_args.channels": {"type": "choice", "values": [8, 512]}}}
    r = httpx.post(f"{base}/sweeps", json=too_wide, timeout=120)
    assert r.status_code == 422 and "params.model_args.channels" in r.json()["detail"], r.text
    assert httpx.get(f"{base}/sweeps").json()["total"] == 0  # nothing stored

    r = httpx.post(f"{base}/sweeps", json=spec, timeout=120)
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    assert wait_status(base, sweep_id)[-1] == "succeeded"
    board = httpx.get(f"{base}/leaderboard", params={"sweep_id": sweep_id}).json()
    assert board["total"] == spec["num_samples"]
    assert {t["config"]["model_args.channels"] for t in board["items"]} <= {8, 16, 32}
    assert all(t["model"] == "tinynet" and t["params"] for t in board["items"])
    best = board["items"][0]

    r = httpx.get(f"{base}/trials/{best['trial_id']}/export", params={"format": "onnx"}, timeout=300)
    assert r.status_code == 200, r.text
    onnx_file = tmp_path / "best.onnx"
    onnx_file.write_bytes(r.content)
    model_file = tmp_path / "best.pt"
    model_file.write_bytes(httpx.get(base + best["checkpoint_url"], timeout=60).content)
    mf = read_model_file(model_file)
    assert mf.meta["model_args"]["channels"] == best["config"]["model_args.channels"]
    x = np.random.default_rng(0).random((16, 3, 32, 32), dtype=np.float32)
    import onnxruntime

    got = onnxruntime.InferenceSession(str(onnx_file)).run(None, {"images": x})[0]
    expected = with_preprocessing(mf)(torch.from_numpy(x)).detach().numpy()
    assert np.abs(got - expected).max() < 1e-3 and (got.argmax(1) == expected.argmax(1)).all()
    assert read_metadata(onnx_file)["trial_id"] == best["trial_id"]

    ts = tmp_path / "best.ts.pt"
    p = _cli(env, "export", best["trial_id"], "--format", "torchscript", "-o", str(ts))
    assert p.returncode == 0, p.stderr
    got_ts = torch.jit.load(str(ts))(torch.from_numpy(x)).detach().numpy()
    assert np.abs(got_ts - expected).max() < 1e-3


def test_a_plugin_with_no_params_gets_a_planned_space_and_the_sweep_refits(tinynet, served, tmp_path):
    """No `params`: the service plans a space for the plug-in (the plan shows it), searches it,
    and ends in a refit, which is the sweep's model (its best trial, first on its board). Under
    a time budget half of it is the refit's, which trains longer than its 2-epoch source."""
    base, env = served("synthetic:600")
    spec = {
        "name": "tinynet-auto",
        "num_samples": 3,
        "max_concurrent_trials": 2,
        "search": {"algorithm": "optuna", "seed": 0, "n_initial_points": 2},
        "resources_per_trial": {"cpu": 1, "gpu": 0},
        "fixed": {"model": "tinynet", "model_args": {"channels": 8, "blocks": 2}, "epochs": 2},
        # The refit's share, 30 s: tens of epochs of 600 small images even on a loaded machine
        # (an epoch takes under a second); the search's 30 s, three 2-epoch trials.
        "time_budget_s": 60,
    }
    plan = httpx.post(f"{base}/sweeps/plan", json=spec, timeout=120)
    assert plan.status_code == 200, plan.text
    space = plan.json()["auto_space"]
    assert set(space) == {"lr", "weight_decay", "batch_size", "label_smoothing"}  # epochs is fixed
    assert space["lr"] == {"type": "loguniform", "low": 0.005, "high": 0.5}  # SGD's range
    assert plan.json()["refit_trial_epochs"] == 3  # 2 epochs on 1 / 0.8 as many images, rounded up
    assert any(c.startswith("refit_share keeps the last 50% of time_budget_s (30 s)") for c in plan.json()["cuts"])

    r = httpx.post(f"{base}/sweeps", json=spec, timeout=120)
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    assert wait_status(base, sweep_id)[-1] == "succeeded"
    sweep = httpx.get(f"{base}/sweeps/{sweep_id}").json()
    assert sorted(sweep["spec"]["auto_params"]) == sorted(space) and sweep["spec"]["refit"] is True
    assert sweep["spec"]["refit_share"] == 0.5
    items = httpx.get(f"{base}/leaderboard", params={"sweep_id": sweep_id}).json()["items"]
    refit, search = items[0], [it for it in items if not it["refit_of"]]
    assert len(items) == 4 and len(search) == 3
    assert refit["refit_of"] in {it["trial_id"] for it in search} and refit["test_acc"] is not None
    assert refit["train_images"] == 600 and {it["train_images"] for it in search} == {480}
    assert refit["config"]["epochs"] > 2 and refit["epochs"] == refit["config"]["epochs"]  # stretched, all trained
    assert sweep["best_trial"]["trial_id"] == refit["trial_id"] and sweep["best_trial"]["refit_of"]
    for t in search:  # every trial drew from the planned space
        assert 0.005 <= t["config"]["lr"] <= 0.5 and t["config"]["batch_size"] in (64, 128, 256)
    assert httpx.get(base + refit["checkpoint_url"], timeout=60).status_code == 200


def _shapes_folder(root: Path, size: int = 48) -> list[Path]:
    """3 classes of 48x48 PNGs, each class a colour with noise: train/ and test/, no val/."""
    rng = np.random.default_rng(0)
    colours = {"circle": 0, "square": 1, "triangle": 2}
    for split, n in (("train", 60), ("test", 15)):
        for name, channel in colours.items():
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
                img[..., channel] += 140
                Image.fromarray(img).save(d / f"{i}.png")
    return [root / "test" / name / "0.png" for name in colours]


def test_an_image_folder_of_three_classes_at_48px_trains_with_three_classes_named_everywhere(served, tmp_path):
    images = _shapes_folder(tmp_path / "shapes")
    base, env = served(str(tmp_path / "shapes"))
    spec = {
        "name": "shapes",
        "num_samples": 2,
        "max_concurrent_trials": 2,
        "search": {"algorithm": "random", "seed": 0},
        "scheduler": {"type": "fifo"},
        "data": {"image_size": 48},
        "fixed": {"model": "airbench", "width": 0.25, "epochs": 2, "batch_size": 32},
        "params": {"lr": {"type": "loguniform", "low": 0.02, "high": 0.1}},
    }
    fixed_size = {**spec, "fixed": {"model": "simple_cnn", "epochs": 2, "batch_size": 32}}
    r = httpx.post(f"{base}/sweeps", json=fixed_size, timeout=60)
    assert r.status_code == 422 and "data.image_size" in r.json()["detail"] and "48x48" in r.json()["detail"]
    r = httpx.post(f"{base}/sweeps", json=spec, timeout=60)
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    assert wait_status(base, sweep_id)[-1] == "succeeded"
    sweep = httpx.get(f"{base}/sweeps/{sweep_id}").json()
    assert sweep["dataset"] == "shapes-48px" and sweep["classes"] == ["circle", "square", "triangle"]
    board = httpx.get(f"{base}/leaderboard", params={"dataset": "shapes-48px"}).json()
    assert board["total"] == 2 and all(t["dataset"] == "shapes-48px" for t in board["items"])
    best = board["items"][0]

    model_file = tmp_path / "best.pt"
    model_file.write_bytes(httpx.get(base + best["checkpoint_url"], timeout=60).content)
    mf = read_model_file(model_file)
    assert mf.classes == ("circle", "square", "triangle") and mf.image_size == 48
    assert mf.model(torch.zeros(1, 3, 48, 48)).shape == (1, 3)  # num_classes 3 reached the net

    p = _cli(env, "predict", str(model_file), *map(str, images))
    assert p.returncode == 0, p.stderr
    labels = [line.rsplit(": ", 1)[1].split()[0] for line in p.stdout.splitlines()]
    assert set(labels) <= {"circle", "square", "triangle"} and len(labels) == 3
    r = httpx.post(
        f"{base}/trials/{best['trial_id']}/predict",
        files=[("images", (f.name, f.read_bytes(), "image/png")) for f in images],
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["classes"] == ["circle", "square", "triangle"], r.text
    assert [pr["top"][0]["label"] for pr in r.json()["predictions"]] == labels
    if shutil.which("chromium") is not None:
        _page_names_the_classes(base, sweep_id)


def _page_names_the_classes(base: str, sweep_id: str) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        # 409: the analysis panel asking the importance of a 2-trial sweep (it needs 5), which
        # the page shows as a message; it asks only when it gets there before the test ends.
        record_page_errors(page, errors, lambda status: status in (200, 201, 409))
        page.goto(base)
        cell = page.locator(f"#sweeps tbody tr[data-sweep='{sweep_id}'] td.dataset")
        cell.wait_for()
        assert cell.inner_text() == "shapes-48px: circle, square, triangle"
        page.wait_for_selector("#f-dataset option[value='shapes-48px']", state="attached")
        page.select_option("#f-dataset", "shapes-48px")
        from playwright.sync_api import expect

        expect(page.locator("#board tbody tr")).to_have_count(2)  # no eval: the page's CSP forbids it
        assert set(page.locator("#board tbody tr td:nth-child(9)").all_inner_texts()) == {"shapes-48px"}
        browser.close()
    assert errors == []


def test_the_python_api_example_runs(ray_head, tmp_path):
    env = cli_env(ray_head, tmp_path / "results")
    p = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python_api.py"), "--results-dir", str(tmp_path / "results")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # not the checkout: the installed package
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    assert "succeeded" in out and "predicted:" in out and "onnxruntime agrees with PyTorch" in out
    diff = float(out.split("max |logit difference| ")[1].split()[0])
    assert diff < 1e-3
    assert (tmp_path / "results" / "best.onnx").stat().st_size > 10_000
