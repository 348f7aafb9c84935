"""docs/tutorial.md, run as a reader runs it: its spec saved under the name it gives, then
every `cifar-sweeps` line of its ```sh blocks in order against a real Ray head, on a small
synthetic data set in place of CIFAR-10 (`CIFAR_SWEEPS_DATA`, which the tutorial's own
setup line sets), the sweep's id from `run`'s output standing for SWEEP_ID. Each command
must succeed, and each line of the ```text block after it that holds no figure (headers,
labels, messages: what doesn't change with the data) must be in its output."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.ray_head import VENV_BIN, cli_env
from tests.helpers.tutorial import SPEC_FILE, TUTORIAL, blocks, missing

# Lines a reader runs once to set up, or that serve until Ctrl-C: not run here.
SETUP = re.compile(r"^(bash scripts/setup\.sh|source |export |cifar-sweeps serve\b)")


def run_line(line: str, env: dict, cwd: Path) -> str:
    """One `cifar-sweeps` line, as a reader types it; its output (stdout and stderr)."""
    p = subprocess.run(
        [str(VENV_BIN / "cifar-sweeps"), *line.split()[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, f"{line}: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return p.stdout + p.stderr


@pytest.mark.slow
def test_the_tutorial_runs_as_written(ray_head, tmp_path):
    text = TUTORIAL.read_text()
    (tmp_path / SPEC_FILE.search(text)[1]).write_text(
        json.dumps(json.loads(next(body for lang, body in blocks(text) if lang == "json")))
    )
    env = cli_env(ray_head, tmp_path / "results", CIFAR_SWEEPS_DATA="synthetic:2000")
    sweep_id, last, output, ran, problems = None, "", "", 0, []
    for lang, body in blocks(text):
        if lang == "text" and output:  # the output to expect of the command before it
            problems += [f"after {last!r}: no line {m!r}" for m in missing(body, output)]
            output = ""
        for line in body.splitlines() if lang == "sh" else []:
            line = re.sub(r"\s+#.*$", "", line).strip()
            if not line or SETUP.match(line):
                continue
            assert line.startswith("cifar-sweeps "), f"the tutorial runs only cifar-sweeps: {line}"
            if "SWEEP_ID" in line:
                assert sweep_id, f"{line}: no sweep has run yet"
            last = line.replace("SWEEP_ID", sweep_id or "")
            output, ran = run_line(last, env, tmp_path), ran + 1
            if found := re.search(r"^sweep (sw-[0-9a-f]+): succeeded", output, re.M):
                sweep_id = found[1]
    assert ran >= 6 and sweep_id  # plan, run, leaderboard, analyze, repeat, export
    assert problems == []
    assert (tmp_path / "model.onnx").stat().st_size > 0
