"""Static checks of the container and cluster files (no Docker engine needed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helpers.paths import REPO

DOCKER = REPO / "docker"
PYPROJECT = REPO / "pyproject.toml"


def pinned_ray() -> str:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (ray,) = [d for d in deps if d.startswith("ray[")]
    return ray.split("==")[1]


def test_hadolint_passes():
    exe = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.skip("hadolint not installed")
    p = subprocess.run([exe, str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_image_tag_matches_pinned_ray():
    m = re.search(r"^FROM rayproject/ray:(\S+)", (DOCKER / "Dockerfile").read_text(), re.M)
    assert m, "the Dockerfile must build on the official Ray image"
    tag = m.group(1)
    assert tag.startswith(pinned_ray() + "-") and "gpu" in tag


def test_compose_services():
    c = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = c["services"]
    assert {"ray-head", "ray-worker", "api", "postgres"} <= set(services)
    gpu = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "127.0.0.1:8265:8265" in services["ray-head"]["ports"]  # dashboard on loopback
    assert services["api"]["environment"]["RAY_ADDRESS"] == "http://ray-head:8265"
    assert "postgresql+psycopg://" in services["api"]["environment"]["CIFAR_SWEEPS_STORE_URL"]
    for name in ("postgres", "ray-head", "api"):
        assert "healthcheck" in services[name]
    assert {"results", "pgdata"} <= set(c["volumes"])


def test_the_raycluster_runs_the_pinned_ray():
    cluster = yaml.safe_load((DOCKER.parent / "deploy" / "k8s" / "base" / "raycluster.yaml").read_text())
    assert cluster["kind"] == "RayCluster" and cluster["spec"]["rayVersion"] == pinned_ray()
