"""The built wheel carries the presets (and the migrations): installed with no source tree in
reach, the CLI lists every preset and GET /search-spaces serves each one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.paths import REPO

PRESETS = sorted(p.stem for p in (REPO / "search_spaces").glob("*.json"))

SERVE = textwrap.dedent("""
    import json, sys
    import cifar_sweeps
    from fastapi.testclient import TestClient
    from cifar_sweeps.service.api import create_app
    from cifar_sweeps.settings import Settings
    client = TestClient(create_app(Settings(results_dir=sys.argv[1])))
    listed = client.get("/search-spaces").json()["items"]
    one = {i["name"]: client.get(f"/search-spaces/{i['name']}").json()["name"] for i in listed}
    print(json.dumps({"file": cifar_sweeps.__file__, "names": [i["name"] for i in listed], "one": one}))
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel, built from this checkout and installed into a folder of its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp / "dist"),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("cifar_sweeps-*.whl")
    target = tmp / "site"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inst.returncode == 0, inst.stderr[-3000:]
    return target, tmp


def _run(installed, *args: str) -> str:
    target, tmp = installed
    # cwd and PYTHONPATH leave the checkout out of reach: only the installed copy can be found.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp)}
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=tmp, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def test_the_cli_of_the_installed_wheel_lists_every_preset(installed):
    out = _run(installed, "-m", "cifar_sweeps", "presets")
    assert [line.split()[0] for line in out.splitlines()] == PRESETS
    spec = json.loads(_run(installed, "-m", "cifar_sweeps", "presets", "report-tpe-as-run"))
    assert spec["name"] == "report-tpe-as-run"


def test_the_api_of_the_installed_wheel_serves_every_preset(installed):
    target, tmp = installed
    got = json.loads(_run(installed, "-c", SERVE, str(tmp / "results")))
    assert got["file"].startswith(str(target)), got["file"]  # not the checkout's copy
    assert got["names"] == PRESETS
    assert got["one"] == {name: name for name in PRESETS}
