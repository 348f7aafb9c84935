"""A real `cifar-sweeps serve` on loopback with no Ray cluster behind it (nothing the
hardening tests ask needs one): its results folder, its own settings, its log."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.ray_head import free_port


@contextlib.contextmanager
def loopback_service(root: Path, results_name: str = "results", **settings: str) -> Iterator[tuple[str, Path]]:
    """(base URL, results folder) of a service started with `settings` as its variables; no
    store URL or token of this process's environment leaks in."""
    from tests.helpers.served_process import serve_process

    results = root / results_name
    env = {
        **os.environ,
        "CIFAR_SWEEPS_RESULTS_DIR": str(results),
        "RAY_ADDRESS": f"http://127.0.0.1:{free_port()}",  # no cluster
        "CIFAR_SWEEPS_DATA": "synthetic:500",
    }
    env.pop("CIFAR_SWEEPS_STORE_URL", None)
    env.pop("CIFAR_SWEEPS_API_TOKEN", None)
    env.update(settings)
    with open(root / "serve.log", "w") as log:
        proc, base = serve_process(env, free_port(), log)
        try:
            yield base, results
        finally:
            proc.terminate()
            proc.wait(30)
