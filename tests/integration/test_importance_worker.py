"""The importance worker (a process of its own beside the service) ends with the service,
however the service ends."""

from __future__ import annotations

import pytest

from tests.helpers.paths import REPO


@pytest.mark.integration
def test_the_importance_worker_ends_with_the_service_however_it_ends(tmp_path):
    """The service computes importance in a spawned worker process. Killed (or ended by the
    SIGTERM uvicorn re-raises, which runs no clean-up), the service leaves no worker behind."""
    import subprocess
    import sys
    import time

    import psutil

    script = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from tests.helpers.importance import stored_sweep
from cifar_sweeps.analysis import importance
from cifar_sweeps.sweepspec.schema import parse_spec
settings, store, sweep = stored_sweep(Path({str(tmp_path)!r}), 8)
importance.cached_importance(parse_spec(sweep.spec), sweep.id, 0, lambda: store.trials(sweep.id))
import psutil
print("PIDS", *(c.pid for c in psutil.Process().children(recursive=True)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    out = tmp_path / "out.txt"  # a file, not a pipe: a leftover worker would hold a pipe open
    with open(out, "w") as f:
        subprocess.run([sys.executable, "-c", script], stdout=f, stderr=subprocess.STDOUT, timeout=300)
    import re

    found = re.search(r"^PIDS((?: \d+)+)$", out.read_text(), flags=re.M)  # warnings may follow it
    assert found, out.read_text()[-2000:]
    pids = [int(x) for x in found.group(1).split()]
    deadline = time.time() + 15
    while time.time() < deadline and any(psutil.pid_exists(x) and psutil.Process(x).status() != "zombie" for x in pids):
        time.sleep(0.5)
    left = [x for x in pids if psutil.pid_exists(x) and psutil.Process(x).status() != "zombie"]
    assert not left, f"worker processes outlived the service: {left}"
