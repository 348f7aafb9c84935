"""Planning against a real Ray cluster: its resources counted, and no job submitted."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import get_store
from tests.helpers.plans import BASE
from tests.helpers.specs import AUTH


@pytest.mark.slow
def test_planning_on_a_real_cluster_submits_no_job(ray_head, tmp_path):
    """The service wired to a real Ray head: a plan (with its probe) leaves the Ray job list
    and the store as they were."""
    from ray.job_submission import JobSubmissionClient

    settings = Settings(results_dir=tmp_path, api_token="s3cret-token", dashboard_url=ray_head.dashboard_url)
    client = TestClient(create_app(settings))
    ray_jobs = JobSubmissionClient(ray_head.dashboard_url)
    before = {j.submission_id for j in ray_jobs.list_jobs()}
    body = BASE | {"fixed": {"model": "mlp", "epochs": 2, "batch_size": 64}, "resources_per_trial": {"cpu": 1}}
    r = client.post("/sweeps/plan", json=body, headers=AUTH)
    assert r.status_code == 200 and r.json()["seconds_per_epoch"] > 0, r.text
    assert {j.submission_id for j in ray_jobs.list_jobs()} == before
    assert get_store(settings.resolved_store_url()).list_sweeps()[1] == 0
