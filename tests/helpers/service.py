"""A `cifar-sweeps serve` process against a Ray head that a test starts, stops and restarts."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

from cifar_sweeps.store.queries import Store
from tests.helpers.ray_head import VENV_BIN, cli_env, free_port

REPO = Path(__file__).resolve().parent.parent.parent


class Service:
    def __init__(self, head, results: Path, **env):
        self.port = free_port()
        self.env = cli_env(
            head, results, **{"RAY_ADDRESS": head.dashboard_url, "CIFAR_SWEEPS_DATA": "synthetic:1200", **env}
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.store = Store(f"sqlite:///{results / 'cifar_sweeps.db'}")
        self.proc = None
        self.log = results.parent / f"serve-{self.port}.log"

    def start(self) -> Service:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                # The access log on: the token test reads it for leaks.
                [str(VENV_BIN / "cifar-sweeps"), "serve", "--port", str(self.port), "--access-log"],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(f"{self.base}/sweeps?limit=1", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("the service did not come up")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def status(self, sweep_id: str) -> str:
        return httpx.get(f"{self.base}/sweeps/{sweep_id}", timeout=10).json()["status"]

    def wait(self, sweep_id: str, until: set[str], timeout_s: float = 400) -> str:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            s = self.status(sweep_id)
            if s in until:
                return s
            time.sleep(0.5)
        return s
