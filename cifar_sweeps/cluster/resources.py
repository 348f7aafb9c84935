"""What a plan counts on: the CPUs, GPUs and memory of the Ray cluster a sweep will run on
(its dashboard's state API), or of this machine when the service starts its own head.

Read by the use cases that plan (usecases/submit.py, usecases/drive.py), which hand the
figures to the plan's arithmetic (analysis/plan.py): the plan itself asks no cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from pydantic import BaseModel

from cifar_sweeps.cluster.connection import dashboard_url, ray_address
from cifar_sweeps.settings import Settings

STATE_API_TIMEOUT_S = 5.0  # a dashboard that doesn't answer in this long is counted as absent


class PlanResources(BaseModel):
    cpus: float
    gpus: float
    memory_mb: float  # of the cluster's alive nodes together (this machine's, for a local plan)
    source: str  # where the figures came from, in words


def local_resources() -> PlanResources:
    """This machine's CPUs, GPUs and memory: the cluster the service starts (a local head)."""
    import psutil

    gpus = 0
    if shutil.which("nvidia-smi"):
        p = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        gpus = sum(1 for line in p.stdout.splitlines() if line.startswith("GPU "))
    return PlanResources(
        cpus=float(os.cpu_count() or 1),
        gpus=float(gpus),
        memory_mb=psutil.virtual_memory().total / 2**20,
        source="this machine (the local Ray head's resources)",
    )


def cluster_resources(url: str, timeout_s: float = STATE_API_TIMEOUT_S) -> PlanResources | None:
    """The Ray cluster's alive nodes, CPUs, GPUs and memory, from its dashboard's state API
    (GET /api/v0/nodes), or None when it does not answer."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/v0/nodes?limit=10000", timeout=timeout_s) as r:
            nodes = json.loads(r.read())["data"]["result"]["result"]
    except Exception:
        return None
    alive = [n.get("resources_total") or {} for n in nodes if n.get("state") == "ALIVE"]
    if not alive:
        return None
    return PlanResources(
        cpus=sum(float(n.get("CPU", 0)) for n in alive),
        gpus=sum(float(n.get("GPU", 0)) for n in alive),
        memory_mb=sum(float(n.get("memory", 0)) for n in alive) / 2**20,
        source=f"the Ray cluster at {url}: {len(alive)} node(s), from its dashboard's state API",
    )


def resources_at(url: str | None) -> tuple[PlanResources, list[str]]:
    """The resources of the cluster at `url` (None: this machine), and the warnings a plan
    shows: a cluster that did not answer is counted as this machine, and says so."""
    if not url:
        return local_resources(), []
    found = cluster_resources(url)
    if found is not None:
        return found, []
    return local_resources(), [f"the Ray cluster at {url} did not answer: counted on this machine instead"]


def named_cluster_url(settings: Settings) -> str | None:
    """The dashboard of the cluster RAY_ADDRESS names, whose resources a plan counts; None
    when no cluster is named (a run starts its own head on this machine)."""
    return dashboard_url(settings) if ray_address() else None
