"""The Ray cluster: where it is (RAY_ADDRESS), how to talk to it (Ray's token mode), and a
local head or runtime when none is set. The one module that reads or sets Ray's variables
and the process environment Ray, Tune, torch and W&B read (settings.py reads ours).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from cifar_sweeps.errors import RayUnavailable
from cifar_sweeps.settings import Settings, url_has_password

# Ray's own variables: the cluster to join, and whether its clients send a token.
ADDRESS = "RAY_ADDRESS"
AUTH_MODE = "RAY_AUTH_MODE"


def ray_address() -> str | None:
    """The cluster the user named (a GCS address, `auto`, or a Jobs API URL), or None."""
    return os.environ.get(ADDRESS) or None


def process_default(name: str, value: str) -> None:
    """Set a variable that a library reads from this process's environment (Tune's snapshot
    period, torch's threads), unless the user set it."""
    os.environ.setdefault(name, value)


def token_path_hint() -> str:
    """Where the Ray token of this machine is, in words."""
    return f"{os.environ.get('RAY_AUTH_TOKEN_PATH') or '~/.ray/auth_token'} (or $RAY_AUTH_TOKEN)"


def dashboard_url(settings: Settings) -> str:
    """The Jobs API address: RAY_ADDRESS when it is an http(s) URL, else the setting."""
    addr = ray_address() or ""
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
    if os.environ.get(AUTH_MODE) is None and needs_token(url):
        os.environ[AUTH_MODE] = "token"


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local_url(url: str) -> bool:
    """A cluster on this machine: its dashboard is on a loopback address."""
    from urllib.parse import urlparse

    return is_loopback(urlparse(url if "://" in url else f"http://{url}").hostname or "")


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
    return [
        f"--{flag}={_free_port()}"
        for flag in (
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "metrics-export-port",
            "runtime-env-agent-port",
        )
    ]


# What a Ray head we start may inherit: every Ray process (and every job driver, which the
# head spawns) gets this environment, and the dashboard can show it. Secrets never travel.
HEAD_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "TZ",
        "TMPDIR",
        "TERM",
        "SHELL",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "PYTHONUNBUFFERED",
        "LD_LIBRARY_PATH",
        "CIFAR10_ARCHIVE",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        # downloads (torchvision's CIFAR-10, pretrained weights) behind a proxy
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        # s3:// storage: where credentials are, never the keys themselves (files, profiles, roles)
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "GOOGLE_APPLICATION_CREDENTIALS",
    }
)
HEAD_ENV_PREFIXES = (
    "LC_",
    "RAY_",
    "CUDA_",
    "NVIDIA_",
    "NCCL_",
    "OMP_",
    "MKL_",
    "KMP_",
    "OPENBLAS_",
    "TORCH",
    "CIFAR_SWEEPS_",
    "WANDB_",
)
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


def start_head(
    dashboard_port: int,
    port: int = 0,
    num_cpus: int | None = None,
    env: dict | None = None,
    timeout_s: float = 120,
    resources: dict[str, float] | None = None,
    num_gpus: int | None = None,
) -> str:
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
    cmd = [
        _ray_cli(),
        "start",
        "--head",
        f"--port={port or 6379}",
        f"--temp-dir={temp_dir}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        "--include-dashboard=true",
        "--disable-usage-stats",
        *agents,
    ] + ([f"--num-cpus={num_cpus}"] if num_cpus else [])
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


def init_ray(address: str | None = None) -> None:
    """Connect to RAY_ADDRESS (or `address`) when set; otherwise start a local runtime."""
    import ray

    if ray.is_initialized():
        return
    address = address or ray_address()
    if address and address.startswith(("http://", "https://")):
        address = "auto"  # a Jobs API URL names the cluster's dashboard, not its GCS
    if address is None:
        # A local runtime of ours lives on loopback and for this command only. In Ray's
        # default mode it would write ~/.ray/auth_token, and every later `ray start --head`
        # on this machine would then turn token authentication on, so that a plain `ray job
        # submit` fails. Unless the user chose a mode, it runs without a token.
        os.environ.setdefault(AUTH_MODE, "disabled")
    ray.init(
        address=address, include_dashboard=None, log_to_driver=True, logging_level="WARNING", configure_logging=True
    )
