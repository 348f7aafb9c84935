"""The torch processes the service starts for a request (a throughput probe, a model check
at submit, an export): one at a time per service process, each bounded in time and memory.
The API process loads no torch; a request that would start a second one gets a 503 with a
Retry-After of the running one's time left, so no request waits on another's process, and
the thread that /health and the light routes need is never held by a queue of them.

A child runs plug-in code, so it starts isolated: `python -I` (no working directory or user
site on its path, no PYTHON* variables), in a temporary folder, with an environment that
holds no secret (an allow-list: no API token, W&B key or store URL) and hubs set offline,
in a process group of its own that is killed whole on timeout, and its data memory capped
(RLIMIT_DATA, set by the child's entry before any plug-in is imported). The request travels
as JSON on stdin, never on the command line (Linux caps one argument at 128 KiB), with the
parent's import path less its working directory (plug-ins found by the API are found)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from cifar_sweeps.errors import Busy, ChildTimeout
from cifar_sweeps.settings import child_env, child_memory_mb

TORCH_PROCESS = threading.BoundedSemaphore(1)
_RUNNING_UNTIL = [0.0]  # monotonic deadline of the running child: what Retry-After says


def _half_the_memory_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**21
    except (ValueError, OSError):
        return 8192


# RLIMIT_DATA of a child (MiB): half this machine's memory, 4 to 32 GiB: a probe of ResNet-50
# at its capped batch fits; a plug-in that allocates without end is stopped.
CHILD_MEMORY_MB = max(4096, min(32768, _half_the_memory_mb()))


def busy_error(what: str) -> Busy:
    left = _RUNNING_UNTIL[0] - time.monotonic()
    err = Busy(
        f"{what}: another torch process of this service is running (a probe, a model check or an export); "
        f"retry in {max(1, math.ceil(left))} s at most"
    )
    err.headers = {"Retry-After": str(max(1, math.ceil(left)))}
    return err


def run_torch(
    module: str, request: Any, timeout_s: float, what: str, memory_mb: int = CHILD_MEMORY_MB
) -> subprocess.CompletedProcess:
    """`python -I -m module` with `request` as JSON on stdin, isolated (above), one at a
    time: Busy (503) when one is running, ChildTimeout (503) when this one outlives
    `timeout_s` (its group is killed)."""
    if not TORCH_PROCESS.acquire(blocking=False):
        raise busy_error(what)
    _RUNNING_UNTIL[0] = time.monotonic() + timeout_s
    try:
        with tempfile.TemporaryDirectory(prefix="cifar-sweeps-child-") as home:
            return _run(module, request, timeout_s, what, home, memory_mb)
    finally:
        _RUNNING_UNTIL[0] = 0.0
        TORCH_PROCESS.release()


CHILD_NICE = 10  # a torch child's niceness, over the service's own


def _run(module: str, request: Any, timeout_s: float, what: str, home: str, memory_mb: int):
    cmd = [sys.executable, "-I", "-m", module]
    p = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=home,
        env=child_env(home, memory_mb),  # settings.py: an allow-list, no secret
        start_new_session=True,  # its own process group: killed whole, grandchildren too
    )
    # Below the service in the CPU's queue: on a small machine a probe or an export (torch's
    # import alone is seconds of CPU) must not slow the answers to /health and the page.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, p.pid, CHILD_NICE)
    try:
        out, err = p.communicate(json.dumps({"path": import_path(), "request": request}), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(p)
        raise ChildTimeout(f"{what} took over {timeout_s:g} s and was stopped", timeout_s) from None
    except BaseException:
        kill_group(p)
        raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def import_path() -> list[str]:
    """This process's import path without its working directory ('' or the folder `python -m`
    started in): what the operator gave (PYTHONPATH, site-packages, plug-ins' folders), which
    `python -I` would otherwise drop."""
    here = os.path.realpath(os.getcwd())
    return [p for p in sys.path if p and os.path.realpath(p) != here]


def kill_group(p: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    p.communicate()


def end_pool(pool: ProcessPoolExecutor) -> None:
    """End a worker pool now and wait for its management thread. Its workers are killed (they
    hold nothing a later request can't remake); the wait matters: on Python 3.11 a pool shut
    down without it leaves that thread closing its wake-up pipe while the interpreter's exit
    hook (`_python_exit`, which takes no lock) writes to it: a race that printed
    `OSError: [Errno 9] Bad file descriptor` after a clean Ctrl-C."""
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        p.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def read_request() -> Any:
    """A child's first step: cap its own data memory (before any plug-in is imported), read
    its request from stdin, and add the parent's import path after its own."""
    import resource

    mb = child_memory_mb()
    if mb > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (mb << 20, mb << 20))
    envelope = json.loads(sys.stdin.read())
    sys.path += [p for p in envelope.get("path", []) if p not in sys.path]
    return envelope["request"]
