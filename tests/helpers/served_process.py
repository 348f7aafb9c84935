"""A real `cifar-sweeps serve` in a process of its own, its sweeps awaited; and the headless
Chromium the page tests drive, with the errors a page logs."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.ray_head import VENV_BIN

REPO = Path(__file__).resolve().parent.parent.parent


def serve_process(env: dict, port: int, log=subprocess.DEVNULL) -> tuple[subprocess.Popen, str]:
    """`cifar-sweeps serve` on `port`, returned once /health answers 200."""
    proc = subprocess.Popen(
        [str(VENV_BIN / "cifar-sweeps"), "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("the service did not come up within 60 s")


def wait_status(base: str, sweep_id: str, timeout_s: float = 400) -> list[str]:
    seen: list[str] = []
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = httpx.get(f"{base}/sweeps/{sweep_id}", timeout=10).json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status not in ("queued", "running"):
            return seen
        time.sleep(0.25)
    return seen


def launch_chromium(p):
    return p.chromium.launch(
        executable_path=shutil.which("chromium"),
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


def record_page_errors(page, errors: list[str], status_ok) -> None:
    """Page errors, console errors and responses whose status `status_ok` refuses, into
    `errors`. A 4xx or 503 the page handles is logged by Chromium as a failed load: those are
    judged by their status instead."""
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and not m.text.startswith("Failed to load resource") else None
        ),
    )
    page.on("response", lambda r: None if status_ok(r.status) else errors.append(f"{r.status} {r.url}"))
