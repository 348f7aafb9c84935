"""A sweep interrupted under an earlier package layout resumes under this one: the flat
layout (cifar_sweeps/*.py) and the layer folders before their renames. Tune pickled its
scheduler, callbacks and stopper by their old module paths; `cifar-sweeps resume` must
unpickle them and finish the sweep. Each fixture is the results folder that
tests/fixtures/make_premove_sweep.py left at that layout's commit."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.helpers.paths import REPO
from tests.helpers.ray_head import VENV_BIN, cli_env

pytestmark = pytest.mark.slow
FIXTURES = REPO / "tests" / "fixtures"
# The flat layout (556105b), and the layer folders before their renames (d9663a4: spec/,
# tuning/driver.py, whose StoreCallback and StoreStopper Tune pickled).
LAYOUTS = {"flat": "premove-sweep.tar.gz", "before-renames": "renamed-sweep.tar.gz"}
ROOT = Path("/tmp/cifar-sweeps-premove-fixture")  # the store holds absolute paths under it


@pytest.fixture(params=list(LAYOUTS))
def premove_results(request):
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    with tarfile.open(FIXTURES / LAYOUTS[request.param]) as tar:
        tar.extractall(ROOT, filter="data")
    yield ROOT / "results"
    shutil.rmtree(ROOT, ignore_errors=True)


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "cifar-sweeps"), *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO
    )


def _rows(env: dict) -> list[dict]:
    p = _cli(env, "leaderboard", "--json", "--status", "running", "--status", "terminated")
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)["items"]


def test_a_sweep_interrupted_before_the_move_resumes_after_it(ray_head, premove_results):
    env = cli_env(ray_head, premove_results)
    (before,) = _rows(env)  # one trial had ended; the other was in its second epoch
    assert before["status"] == "terminated" and before["epochs"] == 4
    sweep_id = before["sweep_id"]
    p = _cli(env, "resume", sweep_id)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert f"sweep {sweep_id}: succeeded" in p.stdout
    after = _rows(env)
    assert len(after) == 2 and all(r["status"] == "terminated" and r["epochs"] == 4 for r in after), after
    (kept,) = [r for r in after if r["trial_id"] == before["trial_id"]]
    assert kept == {**before, "rank": kept["rank"]}  # the ended trial is not trained again
    (resumed,) = [r for r in after if r["trial_id"] != before["trial_id"]]
    result = premove_results / "ray" / sweep_id / f"trial_{resumed['trial_id'].rsplit('-', 1)[1]}" / "result.json"
    epochs = [json.loads(line)["epoch"] for line in result.read_text().splitlines() if line]
    assert epochs == [1, 2, 3, 4], epochs  # each epoch once
