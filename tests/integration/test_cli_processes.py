"""The command line as processes: serve refuses a non-loopback bind without a token; a closed
pipe ends a command quietly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cifar_sweeps.service.serve import check_bind
from cifar_sweeps.settings import Settings


@pytest.mark.integration
def test_non_loopback_bind_refused_without_token():
    with pytest.raises(SystemExit, match="token"):
        check_bind("0.0.0.0", Settings(api_token=""))
    check_bind("0.0.0.0", Settings(api_token="x"))
    check_bind("127.0.0.1", Settings(api_token=""))
    p = subprocess.run(
        [sys.executable, "-m", "cifar_sweeps", "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert p.returncode != 0 and "token" in p.stderr


@pytest.mark.integration
def test_a_closed_pipe_ends_the_cli_quietly():
    """`cifar-sweeps presets | head -1`, the reader gone before the first write: no
    traceback, exit 0."""
    import os

    r, w = os.pipe()
    os.close(r)  # the reader left
    try:
        p = subprocess.run(
            [sys.executable, "-m", "cifar_sweeps", "presets"], stdout=w, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(w)
    assert p.returncode == 0 and "Traceback" not in p.stderr and "Error" not in p.stderr, p.stderr
