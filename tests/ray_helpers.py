"""A real Ray head for the end-to-end tests: `ray start --head` on free ports, stopped after."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    def __init__(self, tmp: Path, num_cpus: int = 2):
        self.tmp = tmp
        self.port = free_port()
        self.dashboard_port = free_port()
        self.num_cpus = num_cpus

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self) -> RayHead:
        from cifar_sweeps.jobs import start_head

        self.temp_dir = start_head(self.dashboard_port, self.port, self.num_cpus, env=self.env())
        self._wait_dashboard()
        return self

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["RAY_AUTH_MODE"] = "disabled"
        env.pop("RAY_AUTH_TOKEN", None)
        # Job drivers inherit the head's PATH: the venv's console scripts must be on it.
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
        return env

    def _wait_dashboard(self, timeout_s: float = 90) -> None:
        import urllib.request

        deadline = time.time() + timeout_s
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=2) as r:
                    json.loads(r.read())
                    return
            except Exception:
                time.sleep(1)
        raise RuntimeError("Ray dashboard did not come up")

    def stop(self) -> None:
        from cifar_sweeps.jobs import stop_head

        stop_head(self.temp_dir)


def cli_env(head: RayHead, results: Path, **extra: str) -> dict[str, str]:
    """Environment of a cifar-sweeps process that talks to `head` and keeps its results in
    `results`."""
    env = head.env()
    env.update(RAY_ADDRESS=head.address, CIFAR_SWEEPS_RESULTS_DIR=str(results), PYTHONUNBUFFERED="1")
    env.pop("CIFAR_SWEEPS_STORE_URL", None)
    env.update(extra)
    return env
