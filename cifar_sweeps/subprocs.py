"""The torch processes the service starts for a request (a throughput probe, a model check
at submit, an export): one at a time per service process, each bounded in time. The API
process loads no torch; a request that would start a second one gets a 503 with
Retry-After at once, so no request waits on another's process, and the thread that
/health and the light routes need is never held by a queue of them."""

from __future__ import annotations

import subprocess
import sys
import threading

from cifar_sweeps.errors import Busy

TORCH_PROCESS = threading.BoundedSemaphore(1)


def run_torch(module: str, args: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess:
    """`python -m module args...` in a process of its own, one at a time; Busy (503) when one
    is running or when this one outlives `timeout_s` (it is killed)."""
    if not TORCH_PROCESS.acquire(blocking=False):
        raise Busy(f"{what}: another torch process of this service is running (a probe, a model check or an export)")
    try:
        return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise Busy(f"{what} took over {timeout_s:g} s and was stopped") from None
    finally:
        TORCH_PROCESS.release()
