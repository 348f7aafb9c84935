"""`cifar-sweeps serve`: the API and its page under uvicorn, a local Ray head started (and
stopped) when RAY_ADDRESS names none, and `--submit`'s first sweep once the server is up."""

from __future__ import annotations

import sys
import threading
import time

from fastapi import FastAPI

from cifar_sweeps.cluster.connection import LocalHead
from cifar_sweeps.service.api import create_app
from cifar_sweeps.service.middleware import LOOPBACK_HOSTS
from cifar_sweeps.service.routes.deps import AppState, is_loopback
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import get_store


def check_bind(host: str, settings: Settings) -> None:
    if not is_loopback(host) and not settings.api_token:
        raise SystemExit(
            f"refusing to bind {host}: a non-loopback address needs an API token "
            "(set CIFAR_SWEEPS_API_TOKEN), or bind 127.0.0.1"
        )


def _submit_when_up(server, app: FastAPI, spec_arg: str, host: str, port: int) -> None:
    from cifar_sweeps.sweepspec.schema import load_spec_file
    from cifar_sweeps.usecases.submit import submit_sweep

    while not server.started:
        time.sleep(0.2)
    state: AppState = app.state.s
    base = f"http://{host}:{port}"
    try:
        from cifar_sweeps.analysis.plan import describe

        spec = load_spec_file(spec_arg, state.settings)
        # The first sweep of a fresh store has a plan too: the probe runs here (seconds) when
        # no epoch of its trial shape is measured yet.
        done = submit_sweep(spec, state.settings, state.store, state.jobs, run_probe=True)
        print(f"\nsubmitted sweep {done.sweep.id} ({spec.name}) as Ray job {done.sweep.ray_job_id}", flush=True)
        print(describe(done.plan), flush=True)
    except Exception as e:
        print(f"\ncould not submit {spec_arg}: {e}", file=sys.stderr, flush=True)
    print(
        f"  leaderboard page: {base}/\n  API:              {base}/docs\n"
        f"  leaderboard JSON: {base}/leaderboard\n  Ray dashboard:    {state.jobs.url}\n",
        flush=True,
    )


def print_token_hint(url: str) -> None:
    """A dashboard with Ray's token authentication on opens on a token prompt: say where the
    token is."""
    from cifar_sweeps.cluster.connection import needs_token, token_path_hint

    if needs_token(url):
        print(
            f"the Ray dashboard at {url} asks for a token: paste the one in {token_path_hint()}; "
            "this service sends it to the Jobs API itself",
            flush=True,
        )


def serving_settings(settings: Settings, host: str) -> Settings:
    """Bound to loopback with no allowed hosts set: only loopback names are answered, so a
    page on another site can't reach the service by rebinding its own name to 127.0.0.1."""
    if not settings.allowed_hosts and is_loopback(host):
        return settings.model_copy(update={"allowed_hosts": list(LOOPBACK_HOSTS)})
    return settings


def serve(
    settings: Settings, host: str = "127.0.0.1", port: int = 8000, submit: str | None = None, access_log: bool = False
) -> int:
    """Serve the API and the page; `access_log`: a line per request (off by default: the
    page polls every few seconds, which would flood the terminal)."""
    import uvicorn

    from cifar_sweeps.cluster.connection import dashboard_url, ray_address, use_token_auth_if_needed

    check_bind(host, settings)
    settings = serving_settings(settings, host)
    get_store(settings.resolved_store_url())  # a store that can't be opened: say so before Ray starts
    head = None
    if not ray_address():
        head = LocalHead(dashboard_url(settings))
        print(f"starting a local Ray head (dashboard {head.dashboard}) unless one is running...", flush=True)
        head.ensure()
    # Before Ray's job client is first used: Ray reads its auth mode once.
    use_token_auth_if_needed(dashboard_url(settings))
    print_token_hint(dashboard_url(settings))
    app = create_app(settings)
    if head is not None:
        app.state.shutdown_hooks.append(head.stop)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=access_log))
    if submit:
        threading.Thread(target=_submit_when_up, args=(server, app, submit, host, port), daemon=True).start()
    try:
        server.run()
    finally:
        if head is not None:
            head.stop()
    return 0
