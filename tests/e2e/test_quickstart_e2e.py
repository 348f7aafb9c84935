"""The main job's path, as the README's first command drives it: `cifar-sweeps serve
--submit SPEC` on a real Ray head submits the spec with a plan (also on a fresh store, whose
probe runs then), prints the plan and the URLs, logs no line per request while the page
polls, and ends on Ctrl-C with no traceback, leaving the sweep's results."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import httpx
import pytest

from tests.helpers.ray_head import VENV_BIN, cli_env, free_port
from tests.helpers.sweeps import REPO

pytestmark = pytest.mark.slow


def test_serve_submit_plans_the_first_sweep_stays_quiet_and_ends_on_ctrl_c(ray_head, tmp_path):
    spec = tmp_path / "first.json"
    spec.write_text(
        json.dumps(
            {
                "name": "first",
                "num_samples": 3,
                "max_concurrent_trials": 1,
                "search": {"algorithm": "optuna", "seed": 0, "n_initial_points": 2},
                "fixed": {"model": "mlp", "epochs": 2, "batch_size": 64},
                "params": "auto",
            }
        )
    )
    port = free_port()
    env = cli_env(ray_head, tmp_path / "results", RAY_ADDRESS=ray_head.dashboard_url, CIFAR_SWEEPS_DATA="synthetic:600")
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "cifar-sweeps"), "serve", "--port", str(port), "--submit", str(spec)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the whole group, as in a terminal
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline, sweep = time.time() + 300, None
            while time.time() < deadline:
                try:
                    items = httpx.get(f"{base}/sweeps", timeout=5).json()["items"]
                except httpx.HTTPError:
                    items = []
                if items and items[0]["status"] not in ("queued", "running"):
                    sweep = items[0]
                    break
                httpx.get(f"{base}/", timeout=5) if items else None  # the page, as a browser polls it
                time.sleep(0.5)
            assert sweep is not None and sweep["status"] == "succeeded", sweep
            assert sweep["plan"] is not None and sweep["plan"]["seconds_per_epoch"] is not None  # probed now
            assert set(sweep["plan"]["auto_space"]) >= {"lr", "weight_decay"}
            # The page's importance starts the analysis worker, which Ctrl-C must end quietly too.
            assert httpx.get(f"{base}/sweeps/{sweep['id']}/importance", timeout=60).status_code == 409
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
    text = log.read_text()
    assert code in (0, 130), text[-3000:]  # 130: the shell's code for a program Ctrl-C ended
    assert "plan: 3 trials" in text and "space chosen by the service" in text and f"{base}/docs" in text
    assert '"GET /sweeps HTTP/1.1"' not in text  # no access log by default
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
