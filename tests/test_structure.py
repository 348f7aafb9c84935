"""The package's shape: no import cycle between its modules, no function past 60 lines,
status strings only in lifecycle.py, a light API process (no torch, no Ray), and the
fault-injection keys only where a test turns them on."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.api import create_app
from cifar_sweeps.errors import SpecError
from cifar_sweeps.lifecycle import SweepStatus, TrialStatus
from cifar_sweeps.settings import Settings
from cifar_sweeps.spec import parse_spec
from cifar_sweeps.store import get_store
from tests.test_api import AUTH, FakeJobs

PKG = Path(__file__).resolve().parent.parent / "cifar_sweeps"
MODULES = {".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): p
           for p in PKG.rglob("*.py") if "versions" not in p.parts}


def _imports(path: Path) -> set[str]:
    """Modules of the package that `path` imports, at any depth, except under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m in MODULES}


def test_no_import_cycle():
    graph = {m: _imports(p) - {m} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(n):], n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)


def test_no_function_longer_than_60_lines():
    long = [f"{p.name}:{n.name} ({n.end_lineno - n.lineno + 1} lines)" for p in MODULES.values()
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and n.end_lineno - n.lineno + 1 > 60]
    assert long == []


def test_status_strings_only_in_the_lifecycle():
    words = sorted({s.value for s in SweepStatus} | {s.value for s in TrialStatus})
    pattern = re.compile("[\"'](" + "|".join(words) + ")[\"']")
    found = [f"{p.relative_to(PKG)}:{i}: {line.strip()}" for p in PKG.rglob("*.py") if p.name != "lifecycle.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


LIGHT = textwrap.dedent("""
    import sys
    from fastapi.testclient import TestClient
    from cifar_sweeps.api import create_app
    from cifar_sweeps.settings import Settings
    app = create_app(Settings(results_dir=sys.argv[1]))
    r = TestClient(app).get("/leaderboard")
    assert r.status_code == 200, r.text
    print(sorted(m for m in ("torch", "ray", "torchvision", "hyperopt") if m in sys.modules))
    print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS")][0])
""")


@pytest.mark.integration
def test_the_api_process_loads_neither_torch_nor_ray(tmp_path):
    p = subprocess.run([sys.executable, "-c", LIGHT, str(tmp_path)], capture_output=True, text=True, timeout=120,
                       cwd=PKG.parent)
    assert p.returncode == 0, p.stderr[-3000:]
    loaded, rss_kb = p.stdout.splitlines()
    assert loaded == "[]", loaded
    print(f"API process after GET /leaderboard: RSS {int(rss_kb) // 1024} MiB")


HOOKED = {"name": "h", "fixed": {"model": "mlp", "epochs": 2, "fail_at_epoch": 1},
          "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}}}


def test_fault_hooks_are_unknown_keys_unless_a_test_turns_them_on(tmp_path):
    with pytest.raises(SpecError, match="fixed.fail_at_epoch: unknown parameter"):
        parse_spec(HOOKED, Settings(results_dir=tmp_path))
    assert parse_spec(HOOKED, Settings(results_dir=tmp_path, test_hooks=True)).fixed["fail_at_epoch"] == 1
    for hooks, status in ((False, 422), (True, 201)):
        settings = Settings(results_dir=tmp_path / str(hooks), api_token="s3cret-token", test_hooks=hooks)
        client = TestClient(create_app(settings, FakeJobs(get_store(settings.resolved_store_url()))))
        r = client.post("/sweeps", json=HOOKED, headers=AUTH)
        assert r.status_code == status, r.text
        if status == 422:
            assert "fixed.fail_at_epoch: unknown parameter" in r.json()["detail"]
