"""A stand-in for the Ray cluster where a test is about the API itself (the end-to-end
tests use a real Ray head). It is `create_autospec(Jobs)`: a call the real Jobs would
refuse (a method it lacks, a wrong argument) fails here too, so it can't drift from it.
Submitting writes the store as the real one does; resume and stop run the real code;
the rest raises, so a test that reaches it says so."""

from __future__ import annotations

from unittest.mock import create_autospec

from cifar_sweeps.cluster.jobs import Jobs
from cifar_sweeps.errors import RayUnavailable


def FakeJobs(store, up: bool = True) -> Jobs:  # noqa: N802 (it stands for a class)
    jobs = create_autospec(Jobs, instance=True)
    jobs.url, jobs.store, jobs.up, jobs.created, jobs.drained = "http://127.0.0.1:1", store, up, [], 0

    def client():
        if not jobs.up:
            raise RayUnavailable("Ray is down")

    def create(spec, code_version, plan=None):
        client()
        sweep = store.create_sweep(spec, "synthetic:100", code_version, plan=plan)
        jobs.created.append(sweep.id)
        return sweep

    def drain():
        jobs.drained += 1
        return 0

    def unfaked(name):
        def fail(*args, **kwargs):
            raise AssertionError(f"FakeJobs.{name} is not faked: this test needs a real Ray head")

        return fail

    for name in ("shares_paths", "running_count"):
        getattr(jobs, name).side_effect = unfaked(name)
    jobs.reachable.side_effect = lambda: jobs.up
    jobs.client.side_effect = client
    jobs.create.side_effect = create
    jobs.drain.side_effect = drain
    jobs.sync.side_effect = lambda sweep: sweep
    jobs.sync_all.side_effect = lambda: None
    jobs.resume.side_effect = lambda sweep: Jobs.resume(jobs, sweep)
    jobs.stop.side_effect = lambda sweep: Jobs.stop(jobs, sweep)
    return jobs


def app_with_token(tmp_path, **settings):
    """(TestClient, store, Settings): the app on FakeJobs, a token set ("s3cret-token")."""
    from fastapi.testclient import TestClient

    from cifar_sweeps.service.api import create_app
    from cifar_sweeps.settings import Settings
    from cifar_sweeps.store.queries import get_store

    s = Settings(results_dir=tmp_path, api_token="s3cret-token", **settings)
    store = get_store(s.resolved_store_url())
    return TestClient(create_app(s, FakeJobs(store))), store, s  # FakeJobs leaves sweeps queued
