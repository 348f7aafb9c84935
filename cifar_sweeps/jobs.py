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
from collections.abc import Mapping
from pathlib import Path

from cifar_sweeps import lifecycle
from cifar_sweeps.errors import RayUnavailable
from cifar_sweeps.settings import SECRETS_DIR_ENV, Settings, url_has_password, write_secrets
from cifar_sweeps.states import ACTIVE, SweepStatus
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


# What a Ray head we start may inherit: every Ray process (and every job driver, which the
# head spawns) gets this environment, and the dashboard can show it. Secrets never travel.
HEAD_ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "TERM", "SHELL", "PYTHONPATH", "VIRTUAL_ENV",
    "PYTHONUNBUFFERED", "LD_LIBRARY_PATH", "CIFAR10_ARCHIVE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
    # downloads (torchvision's CIFAR-10, pretrained weights) behind a proxy
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    # s3:// storage: where credentials are, never the keys themselves (files, profiles, roles)
    "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS"})
HEAD_ENV_PREFIXES = ("LC_", "RAY_", "CUDA_", "NVIDIA_", "NCCL_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "TORCH",
                     "CIFAR_SWEEPS_", "WANDB_")
HEAD_MARKER = "CIFAR_SWEEPS_HEAD"  # the head's temp folder, in the environment of each of its processes
HEAD_ENV_SECRETS = frozenset({"CIFAR_SWEEPS_API_TOKEN", "CIFAR_SWEEPS_WANDB_API_KEY", "WANDB_API_KEY"})


def head_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed part of `env`: names or prefixes above, less the secrets (the API
    token, W&B keys, a store URL that holds a password)."""
    def allowed(k: str, v: str) -> bool:
        if k in HEAD_ENV_SECRETS or (k == "CIFAR_SWEEPS_STORE_URL" and url_has_password(v)):
            return False
        return k in HEAD_ENV_NAMES or k.startswith(HEAD_ENV_PREFIXES)

    return {k: v for k, v in env.items() if allowed(k, v)}


def start_head(dashboard_port: int, port: int = 0, num_cpus: int | None = None, env: dict | None = None,
               timeout_s: float = 120, resources: dict[str, float] | None = None, num_gpus: int | None = None) -> str:
    """`ray start --head` on loopback with a temp folder of its own; returns that folder,
    which names this cluster's processes for `stop_head`."""
    import tempfile

    temp_dir = tempfile.mkdtemp(prefix="rh-", dir="/tmp")  # short: Ray's socket paths have a length cap
    env = head_environment(os.environ if env is None else env)
    env[HEAD_MARKER] = temp_dir  # inherited by every process of this head: how stop_head finds them
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # job drivers find cifar-sweeps
    # The agents' ports default to fixed numbers: free ones let a second cluster (a test's,
    # a benchmark's) start beside another without its job agent failing to bind.
    agents = agent_ports() + [f"--ray-client-server-port={_free_port()}"]
    cmd = [_ray_cli(), "start", "--head", f"--port={port or 6379}", f"--temp-dir={temp_dir}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--include-dashboard=true",
           "--disable-usage-stats", *agents] + ([f"--num-cpus={num_cpus}"] if num_cpus else [])
    if num_gpus is not None:  # a GPU-shaped cluster, even on a CPU machine (Ray only counts them)
        cmd.append(f"--num-gpus={num_gpus}")
    if resources:
        import json

        cmd.append(f"--resources={json.dumps(resources)}")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if p.returncode != 0:
        raise RayUnavailable(f"`ray start --head` failed: {p.stderr[-2000:] or p.stdout[-2000:]}")
    return temp_dir


def head_processes(temp_dir: str) -> list:
    """Every process of the head started with `temp_dir`: those that inherited its marker
    (the GCS, raylet, dashboard and its agents, the client proxy, workers, job drivers,
    whatever command line Ray gave them), those naming the folder, and their children."""
    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get(HEAD_MARKER) == temp_dir or any(temp_dir in a for a in p.info["cmdline"] or []):
                procs.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for p in list(procs):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            procs += [c for c in p.children(recursive=True) if c not in procs and c.pid != os.getpid()]
    return procs


def stop_head(temp_dir: str, grace_s: float = 10) -> None:
    """Stop only the Ray processes of the head started with `temp_dir` (`ray stop` would
    stop every Ray cluster on the machine): SIGTERM, then SIGKILL after `grace_s`."""
    import psutil

    procs = head_processes(temp_dir)
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
        """What a job's driver needs, and no secret: the Jobs API and the dashboard show a
        job's runtime env to anyone who reaches them. A store URL with a password and the
        W&B key go to files of this user's (write_secrets) that the driver reads."""
        s = self.settings
        env = {
            "CIFAR_SWEEPS_RESULTS_DIR": str(Path(s.results_dir).resolve()),
            "CIFAR_SWEEPS_DATA": s.data,
            "CIFAR_SWEEPS_WEIGHTS_DIR": str(s.weights_dir),
            "CIFAR_SWEEPS_MIN_FREE_MB": str(s.min_free_mb),
            "PYTHONUNBUFFERED": "1",
        }
        env |= {k: v for k, v in {"CIFAR_SWEEPS_STORAGE_PATH": s.storage_path, "CIFAR_SWEEPS_WANDB": s.wandb and "1",
                                  "CIFAR_SWEEPS_TEST_HOOKS": s.test_hooks and "1"}.items() if v}
        for key in ("WANDB_MODE", "WANDB_PROJECT"):  # W&B's own, read by the driver's W&B client
            if os.environ.get(key):
                env[key] = os.environ[key]
        secrets = {}
        url = s.resolved_store_url()
        if url_has_password(url):
            secrets["store_url"] = url
        else:
            env["CIFAR_SWEEPS_STORE_URL"] = url
        key = os.environ.get("WANDB_API_KEY") or (s.wandb_api_key.get_secret_value() if s.wandb_api_key else "")
        if key:
            secrets["wandb_api_key"] = key
        if secrets:
            env[SECRETS_DIR_ENV] = str(write_secrets(s.results_dir, secrets))
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
