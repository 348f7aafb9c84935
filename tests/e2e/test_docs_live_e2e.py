"""The docs' shell examples, run. A real Ray head, a tiny sweep on synthetic data, and
`cifar-sweeps serve` on a free port; then every `curl` line of README.md and docs/ (fenced or
indented) runs against that server, and every `cifar-sweeps` line that reads or exports
runs against its results, with the examples' ids, files and names standing for real ones.
Lines that train or serve for long are parsed only (tests/unit/project/test_docs_examples.py); lines
that need the network, a weights file or a cluster are skipped. The test prints how many
lines of each kind it met."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.helpers.docs import PAGES, commands, words
from tests.helpers.paths import REPO
from tests.helpers.ray_head import VENV_BIN, cli_env, free_port

pytestmark = pytest.mark.slow
# Why a block line is not run here (its flags are still checked by test_docs_examples).
SKIP = [
    ("the network", re.compile(r"weights fetch")),
    ("a weights file", re.compile(r"weights import")),
    ("a compose or Kubernetes deployment", re.compile(r"Authorization: Bearer")),
    ("more trials for the live sweep (test_extend_e2e runs it)", re.compile(r"/extend\b")),
    ("a trial of the live sweep trained on (test_extend_e2e runs it)", re.compile(r"/continue\b")),
]
# train, serve, delete, refit or change a running sweep (the live one has ended): parsed only
LONG = {"train", "run", "repeat", "resume", "serve", "delete", "update", "extend", "continue", "refit"}
SEED_SPEC = {
    "name": "docs",
    "num_samples": 5,  # importance's least
    "max_concurrent_trials": 2,
    "search": {"algorithm": "hyperopt", "seed": 0, "n_initial_points": 3},
    "scheduler": {"type": "fifo"},
    "fixed": {"model": "mlp", "epochs": 1},
    "params": {
        "lr": {"type": "loguniform", "low": 0.001, "high": 0.1},
        "batch_size": {"type": "choice", "values": [32, 64]},
    },
}


def _cli(env: dict, cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "cifar-sweeps"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def live(ray_head, tmp_path_factory):
    """(server URL, CLI env, working folder, sweep id, trial id): a finished 5-trial sweep,
    its best model file, images, and a served API."""
    work = tmp_path_factory.mktemp("docs")
    env = cli_env(ray_head, work / "results", CIFAR_SWEEPS_DATA="synthetic:300")
    (work / "spec.json").write_text(json.dumps(SEED_SPEC))
    p = _cli(env, work, "run", "spec.json")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    best = json.loads(_cli(env, work, "leaderboard", "--json", "--top", "1").stdout)["items"][0]
    (work / "best.pt").write_bytes(Path(best["checkpoint_url"]).read_bytes())
    for name in ("image.png", "img.png", "cat.jpg", "ship.png"):
        Image.new("RGB", (40, 30), (200, 120, 40)).save(work / name)
    (work / "search_spaces").symlink_to(REPO / "search_spaces")
    port = free_port()
    server = subprocess.Popen(
        [str(VENV_BIN / "cifar-sweeps"), "serve", "--port", str(port)],
        env={**env, "RAY_ADDRESS": ray_head.dashboard_url},  # the service talks to Ray's Jobs API
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, server)
        yield url, env, work, best["sweep_id"], best["trial_id"]
    finally:
        _stop_all(url)
        os.killpg(server.pid, signal.SIGINT)
        server.wait(60)


def _wait_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        assert server.poll() is None, "cifar-sweeps serve exited"
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the server did not answer /health in 120 s")


def _stop_all(url: str) -> None:
    """Stop what the examples submitted (a sweep, repeats), so no job outlives the test."""
    for s in httpx.get(url + "/sweeps?limit=100", timeout=30).json()["items"]:
        if s["status"] in ("queued", "running"):
            httpx.post(f"{url}/sweeps/{s['id']}/stop", timeout=30)


def _skip_reason(line: str) -> str | None:
    return next((why for why, pattern in SKIP if pattern.search(line)), None)


def _with_ids(line: str, url: str, sweep_id: str, trial_id: str) -> str:
    line = line.replace("sw-0123456789-ab12cd34", trial_id).replace("sw-0123456789", sweep_id)
    return re.sub(r"(https?://)?localhost:8000", url, line)


def run_curl(line: str, url: str, work: Path, sweep_id: str, trial_id: str) -> int:
    """The line's HTTP status, run by curl as written (its comment left out)."""
    command = re.sub(r"\s+#.*$", "", _with_ids(line, url, sweep_id, trial_id))
    p = subprocess.run(
        ["bash", "-c", command + " -sS --max-time 300 -w '\\nHTTP_STATUS %{http_code}'"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=330,
    )
    found = re.search(r"HTTP_STATUS (\d+)$", p.stdout.strip())
    assert found, (line, p.stdout[-500:], p.stderr[-500:])
    return int(found.group(1))


def cli_args(line: str, sweep_id: str, trial_id: str) -> list[str]:
    """The line's arguments, its placeholders standing for real ones."""
    out: list[str] = []
    for w in words(line)[1:]:
        before = out[-1] if out else ""
        fill = {
            "SWEEP_ID": sweep_id,
            "ID": sweep_id,
            "TRIAL_ID": trial_id,
            "NAME": "mlp" if before == "--model" else "quickstart",
            "M": "params" if before == "--x" else "best_val_acc",
            "N": "3",
            "SPEC": "quickstart",
        }
        out.append(fill.get(w, w))
    return out


def test_the_docs_examples_run(live):
    url, env, work, sweep_id, trial_id = live
    counts: Counter[str] = Counter()
    failures = []
    for page in [p for p in PAGES if p.name != "tutorial.md"]:  # test_tutorial_e2e runs it, in order
        text = page.read_text()
        for line in commands(text, "curl", inline=False):
            if why := _skip_reason(line):
                counts[f"skipped: {why}"] += 1
                continue
            status = run_curl(line, url, work, sweep_id, trial_id)
            _stop_all(url)  # a sweep or repeats an example started: stopped, not left to train
            counts["curl lines run"] += 1
            # 409: a state the example's sweep is not in (resume a finished sweep); the route,
            # method, query and body were all accepted
            if status >= 500 or status in (404, 405, 415, 422):
                failures.append(f"{page.name}: {line} -> HTTP {status}")
        for line in commands(text, "cifar-sweeps", inline=False):
            if why := _skip_reason(line):
                counts[f"skipped: {why}"] += 1
                continue
            args = cli_args(line, sweep_id, trial_id)
            if args[0] in LONG:
                counts["cifar-sweeps lines parsed only (train or serve)"] += 1
                continue
            p = _cli(env, work, *args)
            counts["cifar-sweeps lines run"] += 1
            if p.returncode != 0:
                failures.append(f"{page.name}: {line} -> exit {p.returncode}: {p.stderr.strip()[-300:]}")
        counts["inline mentions (checked, not run)"] += len(commands(text, "cifar-sweeps")) - len(
            commands(text, "cifar-sweeps", inline=False)
        )
    print("docs examples:", dict(counts))
    assert failures == []
    assert counts["curl lines run"] >= 25 and counts["cifar-sweeps lines run"] >= 8
