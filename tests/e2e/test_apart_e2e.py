"""An API apart from its cluster: the service runs with one results, data and weights root,
the Ray head (its drivers) with another, and `cluster_paths: own` (what a cluster elsewhere
gets by default). The job's runtime env carries none of the API's paths, and the sweep runs
on the cluster's: its Tune folder under the cluster's results, on the cluster's data."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.helpers.ray_head import RayHead, free_port
from tests.helpers.served_process import serve_process, wait_status

pytestmark = pytest.mark.slow


def test_the_sweep_runs_on_the_clusters_paths_and_the_job_carries_none_of_the_apis(tmp_path, monkeypatch):
    from ray.job_submission import JobSubmissionClient

    api_root, cluster_root = tmp_path / "api", tmp_path / "cluster"
    store = f"sqlite:///{tmp_path / 'shared.db'}"  # the one thing both share, set on both
    cluster_env = {
        "CIFAR_SWEEPS_RESULTS_DIR": str(cluster_root / "results"),
        "CIFAR_SWEEPS_DATA": "synthetic:700",
        "CIFAR_SWEEPS_WEIGHTS_DIR": str(cluster_root / "weights"),
        "CIFAR_SWEEPS_STORE_URL": store,
    }
    for k, v in cluster_env.items():  # the head and its drivers inherit these (its own settings)
        monkeypatch.setenv(k, v)
    head = RayHead(tmp_path / "ray").start()
    try:
        env = {
            **head.env(),
            "CIFAR_SWEEPS_RESULTS_DIR": str(api_root / "results"),
            "CIFAR_SWEEPS_DATA": "synthetic:300",
            "CIFAR_SWEEPS_WEIGHTS_DIR": str(api_root / "weights"),
            "CIFAR_SWEEPS_STORE_URL": store,
            "CIFAR_SWEEPS_CLUSTER_PATHS": "own",
            "CIFAR_SWEEPS_MAX_EPOCHS": "50",  # a setting made here on purpose travels
            "RAY_ADDRESS": head.dashboard_url,
        }
        proc, base = serve_process(env, free_port(), open(tmp_path / "serve.log", "w"))  # noqa: SIM115
        try:
            spec = {
                "name": "apart",
                "num_samples": 2,
                "max_concurrent_trials": 2,
                "search": {"algorithm": "random", "seed": 0},
                "scheduler": {"type": "fifo"},
                "fixed": {"model": "mlp", "epochs": 1, "batch_size": 64},
                "params": {"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}},
            }
            r = httpx.post(f"{base}/sweeps", json=spec, timeout=60)
            assert r.status_code == 201, r.text
            sweep = r.json()
            assert wait_status(base, sweep["id"])[-1] == "succeeded"
            job = JobSubmissionClient(head.dashboard_url).get_job_info(sweep["ray_job_id"])
            job_env = job.runtime_env["env_vars"]
            assert not any(str(api_root) in v for v in job_env.values()), job_env
            assert "CIFAR_SWEEPS_RESULTS_DIR" not in job_env and "CIFAR_SWEEPS_DATA" not in job_env
            assert job_env["CIFAR_SWEEPS_MAX_EPOCHS"] == "50" and "CIFAR_SWEEPS_SECRETS_DIR" not in job_env
            from cifar_sweeps.store.queries import get_store

            row = get_store(store).sweep(sweep["id"])
            assert row.experiment_path.startswith(str(cluster_root / "results")), row.experiment_path
            assert (cluster_root / "results" / "ray" / sweep["id"]).is_dir()
            assert not (api_root / "results" / "ray" / sweep["id"]).exists()
            trials = httpx.get(f"{base}/leaderboard", params={"sweep_id": sweep["id"]}).json()["items"]
            assert len(trials) == 2 and all(t["status"] == "terminated" for t in trials)
            logs = JobSubmissionClient(head.dashboard_url).get_job_logs(sweep["ray_job_id"])
            assert "data synthetic:700" in logs  # the cluster's own data, not the API's synthetic:300
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        head.stop()
        for k in cluster_env:
            os.environ.pop(k, None)
