"""The plan counts the cluster it will run on: against a real two-node local cluster (a
2-CPU head and a 3-CPU worker, more than this process's machine view), POST /sweeps/plan
and `cifar-sweeps plan` count the cluster's CPUs, GPUs and memory from its dashboard's state
API and name it; with no cluster answering, the machine's own, with a warning."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.cluster.jobs import Jobs
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import get_store
from tests.helpers.ray_head import VENV_BIN, RayHead, WorkerNode

pytestmark = pytest.mark.slow
SPEC = {
    "name": "plan",
    "num_samples": 4,
    "max_concurrent_trials": 8,
    "search": {"algorithm": "random"},
    "scheduler": {"type": "fifo"},
    "fixed": {"model": "mlp", "epochs": 2, "batch_size": 64},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


def test_the_plan_counts_a_two_node_clusters_cpus_not_this_machines(tmp_path, monkeypatch):
    head = RayHead(tmp_path / "ray", num_cpus=2).start()
    worker = WorkerNode(head, num_cpus=3).start()
    try:
        monkeypatch.setenv("RAY_ADDRESS", head.dashboard_url)
        settings = Settings(results_dir=tmp_path / "results")
        store = get_store(settings.resolved_store_url())
        client = TestClient(create_app(settings, Jobs(settings, store)))
        plan = client.post("/sweeps/plan", json=SPEC).json()
        machine = os.cpu_count()
        assert plan["resources"]["cpus"] == 5 != machine, (plan["resources"], machine)
        assert "2 node(s)" in plan["resources"]["source"] and head.dashboard_url in plan["resources"]["source"]
        assert plan["concurrent_trials"] == 4  # 5 CPUs at 1 CPU a trial, capped by num_samples

        env = {**os.environ, "RAY_ADDRESS": head.dashboard_url, "CIFAR_SWEEPS_RESULTS_DIR": str(tmp_path / "cli")}
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps(SPEC))
        p = subprocess.run(
            [str(VENV_BIN / "cifar-sweeps"), "plan", str(spec), "--json"], env=env, capture_output=True, text=True
        )
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["resources"]["cpus"] == 5
    finally:
        worker.kill()
        head.stop()
    gone = client.post("/sweeps/plan", json=SPEC).json()  # the cluster is gone: this machine, said so
    assert gone["resources"]["cpus"] == machine and any("did not answer" in w for w in gone["warnings"])
