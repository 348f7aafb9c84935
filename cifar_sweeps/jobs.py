"""Ray Jobs: submit, stop and follow sweeps; start (and stop) a local Ray head when no
cluster is set.

A sweep submitted through the API runs as the Ray job `cifar-sweeps run --sweep-id ID`:
the same entry point as the terminal path. The driver reads its spec from the store, so
nothing but the sweep id has to travel to the cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from cifar_sweeps import lifecycle
from cifar_sweeps.errors import RayUnavailable
from cifar_sweeps.lifecycle import ACTIVE, SweepStatus
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import Store, Sweep


def dashboard_url(settings: Settings) -> str:
    """The Jobs API address: RAY_ADDRESS when it is an http(s) URL, else the setting."""
    addr = os.environ.get("RAY_ADDRESS", "")
    if addr.startswith(("http://", "https://")):
        return addr.rstrip("/")
    return settings.dashboard_url.rstrip("/")


def needs_token(url: str, timeout_s: float = 2.0) -> bool:
    """Whether the dashboard refuses an unauthenticated request (Ray token auth is on)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=timeout_s):
            return False
    except urllib.error.HTTPError as e:
        return e.code == 401
    except Exception:
        return False


def use_token_auth_if_needed(url: str) -> None:
    """Ray's clients send the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token) only in token mode; turn it on when the cluster asks for one and the
    user has not chosen a mode. Ray reads the mode when it is imported: call this first."""
    if os.environ.get("RAY_AUTH_MODE") is None and needs_token(url):
        os.environ["RAY_AUTH_MODE"] = "token"


def dashboard_up(url: str, timeout_s: float = 2.0) -> bool:
    """Whether the dashboard answers at all: with Ray's token authentication on, an
    unauthenticated probe gets 401, which still means the cluster is up."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=timeout_s) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        return e.code in (401, 403)
    except Exception:
        return False


def _ray_cli() -> str:
    ray = shutil.which("ray", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if ray is None:
        raise RayUnavailable("the `ray` command is not installed")
    return ray


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_ports() -> list[str]:
    """Free ports for a node's agents, which default to fixed numbers: a second node or
    cluster on the same machine (a test's, a benchmark's) then starts beside another."""
    return [f"--{flag}={_free_port()}" for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                    "metrics-export-port", "runtime-env-agent-port")]


def start_head(dashboard_port: int, port: int = 0, num_cpus: int | None = None, env: dict | None = None,
               timeout_s: float = 120, resources: dict[str, float] | None = None) -> str:
    """`ray start --head` on loopback with a temp folder of its own; returns that folder,
    which names this cluster's processes for `stop_head`."""
    import tempfile

    temp_dir = tempfile.mkdtemp(prefix="rh-", dir="/tmp")  # short: Ray's socket paths have a length cap
    env = dict(env or os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # job drivers find cifar-sweeps
    # The agents' ports default to fixed numbers: free ones let a second cluster (a test's,
    # a benchmark's) start beside another without its job agent failing to bind.
    agents = agent_ports() + [f"--ray-client-server-port={_free_port()}"]
    cmd = [_ray_cli(), "start", "--head", f"--port={port or 6379}", f"--temp-dir={temp_dir}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--include-dashboard=true",
           "--disable-usage-stats", *agents] + ([f"--num-cpus={num_cpus}"] if num_cpus else [])
    if resources:
        import json

        cmd.append(f"--resources={json.dumps(resources)}")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if p.returncode != 0:
        raise RayUnavailable(f"`ray start --head` failed: {p.stderr[-2000:] or p.stdout[-2000:]}")
    return temp_dir


def stop_head(temp_dir: str, grace_s: float = 10) -> None:
    """Stop only the Ray processes of the head started with `temp_dir` (`ray stop` would
    stop every Ray cluster on the machine)."""
    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != os.getpid() and any(temp_dir in part for part in p.info["cmdline"] or []):
                procs.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    # Workers (their titles are `ray::...`) and the job drivers they spawned are children of
    # the raylet: stop them too, or a driver outlives its cluster.
    for p in list(procs):
        with contextlib.suppress(psutil.NoSuchProcess):
            procs += [c for c in p.children(recursive=True) if c not in procs and c.pid != os.getpid()]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    shutil.rmtree(temp_dir, ignore_errors=True)


class LocalHead:
    """A local Ray head on loopback when no cluster is set and none is running; stopped on
    exit only if this process started it (and only that head)."""

    def __init__(self, dashboard: str):
        self.dashboard = dashboard
        self.temp_dir: str | None = None

    def ensure(self, timeout_s: float = 120) -> None:
        if dashboard_up(self.dashboard):
            return
        self.temp_dir = start_head(int(self.dashboard.rsplit(":", 1)[-1]), timeout_s=timeout_s)
        deadline = time.time() + timeout_s
        while not dashboard_up(self.dashboard):
            if time.time() > deadline:
                raise RayUnavailable(f"the Ray dashboard did not come up at {self.dashboard}")
            time.sleep(1)

    def stop(self) -> None:
        if self.temp_dir:
            stop_head(self.temp_dir)
            self.temp_dir = None


class Jobs:
    """Submits sweeps as Ray jobs and keeps the store's sweep status in step with them."""

    def __init__(self, settings: Settings, store: Store):
        self.settings, self.store = settings, store
        self.url = dashboard_url(settings)
        self._client = None
        self._lock = threading.Lock()  # one submitter at a time: the running-sweeps cap holds
        self._unreachable_since: float | None = None  # time.monotonic() of the first failed sync

    # ------------------------------------------------------------ Ray client

    def client(self):
        from ray.job_submission import JobSubmissionClient

        if self._client is None:
            if not dashboard_up(self.url):
                raise RayUnavailable(f"the Ray cluster's Jobs API at {self.url} is not reachable")
            use_token_auth_if_needed(self.url)
            try:
                self._client = JobSubmissionClient(self.url)
            except Exception as e:
                raise RayUnavailable(f"the Ray cluster's Jobs API at {self.url} is not reachable ({e})") from e
        return self._client

    def reachable(self) -> bool:
        return dashboard_up(self.url)

    def _runtime_env(self) -> dict:
        env = {
            "CIFAR_SWEEPS_STORE_URL": self.settings.resolved_store_url(),
            "CIFAR_SWEEPS_RESULTS_DIR": str(Path(self.settings.results_dir).resolve()),
            "CIFAR_SWEEPS_DATA": self.settings.data,
            "CIFAR_SWEEPS_WEIGHTS_DIR": str(self.settings.weights_dir),
            "PYTHONUNBUFFERED": "1",
        }
        s = self.settings
        env |= {k: v for k, v in {"CIFAR_SWEEPS_STORAGE_PATH": s.storage_path, "CIFAR_SWEEPS_WANDB": s.wandb and "1",
                                  "CIFAR_SWEEPS_TEST_HOOKS": s.test_hooks and "1"}.items() if v}
        # W&B's own variables travel as they are: the driver's W&B client reads them.
        for key in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_API_KEY"):
            if os.environ.get(key):
                env[key] = os.environ[key]
        return {"env_vars": env}

    def _submit(self, sweep_id: str, verb: str) -> str:
        entry = f"cifar-sweeps run --sweep-id {sweep_id}" if verb == "run" else f"cifar-sweeps resume {sweep_id}"
        try:
            return self.client().submit_job(entrypoint=entry, runtime_env=self._runtime_env(),
                                            metadata={"cifar_sweeps_sweep": sweep_id})
        except RayUnavailable:
            raise
        except Exception as e:
            self._client = None
            raise RayUnavailable(f"submitting to the Ray Jobs API at {self.url} failed: {e}") from e

    def running_count(self) -> int:
        with self.store.sessions() as s:
            from sqlalchemy import func, select

            return int(s.scalar(select(func.count()).where(
                Sweep.status.in_(sorted(ACTIVE)), Sweep.ray_job_id.is_not(None))) or 0)

    # ------------------------------------------------------------ verbs

    def create(self, spec: dict, code_version: str) -> Sweep:
        """Store a sweep and submit it, or leave it queued when the running cap is reached.
        Raises RayUnavailable (and stores nothing) when the cluster can't be reached."""
        self.client()
        sweep = self.store.create_sweep(spec, self.settings.data, code_version)
        try:
            self.drain()
        except RayUnavailable:
            self.store.delete_sweep(sweep.id)  # nothing half-stored: the user can submit again
            raise
        return self.store.get_sweep(sweep.id)

    def drain(self) -> int:
        """Submit queued sweeps while fewer than max_running_sweeps are running."""
        submitted = 0
        with self._lock:
            while self.running_count() < self.settings.max_running_sweeps:
                nxt = self.store.next_queued()
                if nxt is None:
                    break
                verb = "resume" if nxt.experiment_path else "run"
                job_id = self._submit(nxt.id, verb)
                self.store.update_sweep(nxt.id, ray_job_id=job_id)
                submitted += 1
        return submitted

    def resume(self, sweep: Sweep) -> Sweep:
        self.client()
        lifecycle.requeue(self.store, sweep.id)
        self.drain()
        return self.store.get_sweep(sweep.id)

    def stop(self, sweep: Sweep) -> Sweep:
        lifecycle.request_stop(self.store, sweep.id)
        return self.store.get_sweep(sweep.id)

    # ------------------------------------------------------------ status

    def sync(self, sweep: Sweep) -> Sweep:
        """Correct a sweep whose job ended without the driver saying so (killed, crashed):
        the lifecycle reconciles it with the job's state."""
        if sweep.status not in ACTIVE or not sweep.ray_job_id:
            return sweep
        try:
            info = self.client().get_job_info(sweep.ray_job_id)
            self._unreachable_since = None
        except RayUnavailable:
            return self._cluster_silent(sweep)
        except Exception as e:
            if "404" not in str(e) and "does not exist" not in str(e):
                # The client was made while the cluster was up: a head gone since shows
                # here as a connection error.
                return sweep if dashboard_up(self.url) else self._cluster_silent(sweep)
            info = None  # the cluster does not know the job (it was restarted)
        status = None if info is None else str(getattr(info.status, "value", info.status))
        message = "" if info is None else (info.message or "")[-2000:]
        fresh = self.store.get_sweep(sweep.id)  # the driver may have just written its end
        lifecycle.reconcile(self.store, fresh, status, message)
        return self.store.get_sweep(sweep.id)

    def _cluster_silent(self, sweep: Sweep) -> Sweep:
        """The cluster does not answer. A head that is gone takes its job drivers with it:
        past `cluster_lost_after_s` of silence the sweep is interrupted, naming the cluster,
        rather than left `running` for ever (resume it once a head is up)."""
        now = time.monotonic()
        self._client = None
        if self._unreachable_since is None:
            self._unreachable_since = now
        silent = now - self._unreachable_since
        if silent < self.settings.cluster_lost_after_s:
            return sweep
        lifecycle.reconcile_lost_cluster(self.store, sweep, f"the Ray cluster at {self.url} has not answered for "
                                         f"{silent:.0f} s: its head is gone, and the sweep's driver with it; "
                                         "resume the sweep once a head is up")
        return self.store.get_sweep(sweep.id)

    def sync_all(self) -> None:
        rows, _ = self.store.list_sweeps(limit=1000, status=SweepStatus.RUNNING)
        queued, _ = self.store.list_sweeps(limit=1000, status=SweepStatus.QUEUED)
        for sweep in rows + queued:
            self.sync(sweep)
