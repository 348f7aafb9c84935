"""A real Ray head for the end-to-end tests: `ray start --head` on free ports, stopped after."""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
THROUGHPUTS_ENV = "CIFAR_SWEEPS_TEST_THROUGHPUTS"  # set by conftest.py for the whole run


def shared_throughputs() -> Path:
    """One throughput file for every test of this pytest run (its xdist workers included): a
    shape is probed once a run, not once per results folder (tests/integration/test_plan_probe.py
    probes afresh)."""
    here = os.environ.get(THROUGHPUTS_ENV)
    return Path(here) if here else _outside_pytest()


@functools.cache
def _outside_pytest() -> Path:
    """A script that uses these helpers without conftest.py: one file for its process."""
    return Path(tempfile.mkdtemp(prefix="cifar-sweeps-tests-")) / "throughput.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    def __init__(
        self, tmp: Path, num_cpus: int = 2, resources: dict[str, float] | None = None, num_gpus: int | None = None
    ):
        self.tmp, self.num_gpus = tmp, num_gpus
        self.port = free_port()
        self.dashboard_port = free_port()
        self.num_cpus = num_cpus
        self.resources = resources

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self) -> RayHead:
        from cifar_sweeps.cluster.connection import start_head

        self.temp_dir = start_head(
            self.dashboard_port,
            self.port,
            self.num_cpus,
            env=self.env(),
            resources=self.resources,
            num_gpus=self.num_gpus,
        )
        self._wait_dashboard()
        return self

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["RAY_AUTH_MODE"] = "disabled"
        env.pop("RAY_AUTH_TOKEN", None)
        env["CIFAR_SWEEPS_THROUGHPUT_FILE"] = str(shared_throughputs())
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
        from cifar_sweeps.cluster.connection import stop_head

        stop_head(self.temp_dir)


def cli_env(head: RayHead, results: Path, **extra: str) -> dict[str, str]:
    """Environment of a cifar-sweeps process that talks to `head` and keeps its results in
    `results`."""
    env = head.env()
    env.update(RAY_ADDRESS=head.address, CIFAR_SWEEPS_RESULTS_DIR=str(results), PYTHONUNBUFFERED="1")
    env.pop("CIFAR_SWEEPS_STORE_URL", None)
    env.update(extra)
    return env


class WorkerNode:
    """A second Ray node on this machine that joins `head` (`ray start --address ...`), with
    a temp folder of its own, so its processes can be found and killed alone."""

    def __init__(self, head: RayHead, num_cpus: int = 1, resources: dict[str, float] | None = None):
        self.head, self.num_cpus, self.resources = head, num_cpus, resources or {}

    def start(self) -> WorkerNode:
        import subprocess
        import tempfile

        from cifar_sweeps.cluster.connection import agent_ports

        self.temp_dir = tempfile.mkdtemp(prefix="rw-", dir="/tmp")
        cmd = [
            str(VENV_BIN / "ray"),
            "start",
            f"--address={self.head.address}",
            f"--num-cpus={self.num_cpus}",
            f"--resources={json.dumps(self.resources)}",
            f"--temp-dir={self.temp_dir}",
            *agent_ports(),
        ]
        p = subprocess.run(cmd, env=self.head.env(), capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"`ray start --address` failed: {p.stderr[-2000:] or p.stdout[-2000:]}")
        return self

    def kill(self) -> int:
        """SIGKILL every process of this node (a preempted machine); returns how many."""
        return kill_node(self.temp_dir)


def kill_node(temp_dir: str) -> int:
    """SIGKILL every process of the Ray node started with `temp_dir`, and their children (its
    workers, and on a head its job drivers); returns how many."""
    import contextlib

    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if any(temp_dir in part for part in (p.info["cmdline"] or [])):
                procs.append(p)
    for p in list(procs):
        with contextlib.suppress(psutil.NoSuchProcess):
            procs += [c for c in p.children(recursive=True) if c not in procs]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=10)
    return len(procs)
