"""The API served in this process, on a free loopback port: a real uvicorn server in a thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.helpers.ray_head import free_port


def serve_in_thread(results: Path, **settings):
    """The API on a free loopback port, in this process (a real uvicorn server); `settings`
    beside the results folder (its dashboard_url: a Ray head its queue submits to)."""
    import uvicorn

    from cifar_sweeps.service.api import create_app
    from cifar_sweeps.settings import Settings

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings(results_dir=results, **settings)), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"
