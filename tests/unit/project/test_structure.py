"""The package's shape: its layers import downward only, no import cycle between its
modules, no function past 60 lines, status strings only in lifecycle.py, a light API
process (no torch, no Ray), and the fault-injection keys only where a test turns them on."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.errors import SpecError
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.store.states import SweepStatus, TrialStatus
from cifar_sweeps.sweepspec.schema import parse_spec
from tests.helpers.jobs import FakeJobs
from tests.helpers.paths import REPO
from tests.helpers.specs import AUTH

PKG = REPO / "cifar_sweeps"
MODULES = {
    ".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): p
    for p in PKG.rglob("*.py")
    if "versions" not in p.parts
}


def _imports(path: Path) -> set[str]:
    """Modules of the package that `path` imports, at any depth, `TYPE_CHECKING` included (a
    circle of types is a circle of concerns too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m in MODULES}


# The layers, bottom to top: each part and the parts it may import. The package's root
# holds the bottom (errors, settings, subprocs, moved) and the top (cli, sdk, __main__).
LAYERS: dict[str, set[str]] = {
    "sweepspec": set(),  # sweep specs, trial configs, search spaces, presets, the plug-in registry
    "store": {"sweepspec"},  # the SQL store, statuses, lifecycle, artifact files, migrations
    "training": {"sweepspec"},  # data, models, the training loop (torch)
    "cluster": {"sweepspec", "store"},  # the Ray head, its resources, the Ray Jobs client
    # Ranking, filters, plans, warm starts, importance; a plan counts the cluster's resources
    # as cluster/resources.py gives them (the use case that plans reads them).
    "analysis": {"sweepspec", "store", "cluster"},
    "tuning": {"sweepspec", "store", "training", "analysis", "cluster"},  # Ray Tune
    # What the system does, one function each, under the front ends (so far: the leaderboard
    # read, and driving a stored sweep, whose Ray Tune import is lazy: the API process never
    # runs it, test_the_api_process_loads_neither_torch_nor_ray).
    "usecases": {"sweepspec", "store", "analysis", "cluster", "tuning"},
    "service": {"sweepspec", "store", "analysis", "cluster", "usecases"},  # the HTTP API and its page
}
BOTTOM = {"errors", "settings", "subprocs", "moved", "__init__"}
TOP = {"cli", "sdk", "__main__"}
# Libraries a part must not import (at any depth: a lazy import is an import too).
BANNED: dict[str, set[str]] = {
    "sweepspec": {"torch", "torchvision", "ray", "fastapi", "sqlalchemy"},
    "store": {"torch", "torchvision", "ray"},
    "analysis": {"torch", "torchvision", "ray"},
    "cluster": {"torch", "torchvision"},
    "training": {"ray"},
    "usecases": {"torch", "torchvision", "ray"},  # the API process runs them
    "service": {"torch", "torchvision", "ray"},  # Ray only through cluster/
}
# The imports that cross the layers upward on purpose, each with its reason.
ALLOWED_UP = {
    # POST /trials/{id}/predict decodes and checks uploads with predict.py's torch-free
    # functions, then classifies in a worker process (service/predict_pool.py) that runs
    # predict.py's worker functions: the API process itself never imports torch.
    ("cifar_sweeps.service.routes.trials", "cifar_sweeps.training.predict"),
    ("cifar_sweeps.service.predict_pool", "cifar_sweeps.training.predict"),
    # The plan asks whether the data set is decoded at its size already (the cache file's
    # name, from data.py, which loads no torch): a cold start waits for the decoding.
    ("cifar_sweeps.analysis.plan", "cifar_sweeps.training.data"),
    # The submit's check that pretrained weights are staged: a file test, no torch.
    ("cifar_sweeps.usecases.submit", "cifar_sweeps.training.weights"),
}


# Modules named by a string (a child process's `python -m`, the Ray job's entry point, an
# entry-point string) that sit above the module naming them, each with its reason: a
# process boundary, not an import, but a dependency all the same.
ALLOWED_STRINGS = {
    # The plan's throughput probe and its replay of a search run in children of their own:
    # the API process stays free of torch and of Ray Tune.
    ("cifar_sweeps.analysis.throughput", "cifar_sweeps.training.probe"),
    ("cifar_sweeps.analysis.plan", "cifar_sweeps.tuning.replay"),
    # A sweep's Ray job runs the drive use case; the cluster layer submits it by name.
    ("cifar_sweeps.cluster.jobs", "cifar_sweeps.usecases.drive"),
    # An export runs in a child (torch.onnx), started by the export use case.
    ("cifar_sweeps.usecases.export", "cifar_sweeps.training.export"),
    # The submit's model check builds plug-in models on the meta device, in a child.
    ("cifar_sweeps.sweepspec.modelcheck", "cifar_sweeps.training.meta_build"),
    # The zoo's models are registered as an entry point like a plug-in's (registry.py).
    ("cifar_sweeps.sweepspec.registry", "cifar_sweeps.training.models"),
}
# Strings shaped like a module that name something else.
NOT_MODULES = {"cifar_sweeps.db", "cifar_sweeps.models"}  # the SQLite file; the plug-ins' entry-point group
MODULE_STRING = re.compile(r"^cifar_sweeps(\.\w+)+(:\w+)?$")


def _part(module: str) -> str:
    bits = module.split(".")
    if len(bits) == 1:  # the package's __init__: it hands out the Python API, so it is the top
        return "top"
    if len(bits) > 2 or bits[1] in LAYERS:
        return bits[1]
    return "top" if bits[1] in TOP else "bottom"


def _all_imports(path: Path) -> list[str]:
    """Every module `path` imports (absolute imports; the package uses no relative ones)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:  # `from pkg import module` names the module
            out += [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names
            ]
    return out


def _upward(me: str, other: str) -> bool:
    """Whether a module of part `me` depending on one of part `other` climbs the layers."""
    if other == me or me == "top" or other == "bottom" and me != "bottom":
        return False
    return me == "bottom" or other == "top" or other not in LAYERS[me]


def layer_violations(modules: dict[str, Path]) -> list[str]:
    found = []
    for name, path in modules.items():
        me = _part(name)
        for imported in _all_imports(path):
            root = imported.split(".")[0]
            if root != "cifar_sweeps":
                if root in BANNED.get(me, ()):
                    found.append(f"{name} ({me}) imports {imported}")
                continue
            other = _part(imported)
            if _upward(me, other) and (name, imported) not in ALLOWED_UP:
                found.append(f"{name} ({me}) imports {imported} ({other})")
    return found


def _module_strings(path: Path) -> list[str]:
    """The package's modules that `path` names in a string constant ("cifar_sweeps.x.y",
    or "cifar_sweeps.x.y:attr" for an entry point)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
            out.append(node.value.split(":")[0])
    return out


def string_violations(modules: dict[str, Path]) -> list[str]:
    """Dependencies given as strings: each must name a module that exists (a child process
    of a renamed module fails only when it starts) and climb no layer but as ALLOWED_STRINGS
    says."""
    found = []
    packages = {m for m, p in modules.items() if p.name == "__init__.py"}
    for name, path in modules.items():
        for target in _module_strings(path):
            if target in packages or target in NOT_MODULES:  # a package's resources; no module
                continue
            if target not in modules:
                found.append(f"{name} names {target}, which is no module")
            elif _upward(_part(name), _part(target)) and (name, target) not in ALLOWED_STRINGS:
                found.append(f"{name} ({_part(name)}) names {target} ({_part(target)})")
    return found


def test_dependencies_given_as_strings_name_modules_below_or_say_why(tmp_path):
    assert string_violations(MODULES) == []
    upward, missing = tmp_path / "lifecycle.py", tmp_path / "ranking.py"
    upward.write_text('CHILD = "cifar_sweeps.tuning.driver"\n')
    missing.write_text('CHILD = "cifar_sweeps.training.no_such_module"\n')
    planted = {**MODULES, "cifar_sweeps.store.lifecycle": upward, "cifar_sweeps.analysis.ranking": missing}
    assert sorted(string_violations(planted)) == [
        "cifar_sweeps.analysis.ranking names cifar_sweeps.training.no_such_module, which is no module",
        "cifar_sweeps.store.lifecycle (store) names cifar_sweeps.tuning.driver (tuning)",
    ]


def faces() -> dict[str, set[str]]:
    """Each layer's face: the `__all__` of its `__init__.py` (the modules it offers, and for
    the use cases the names they re-export)."""
    out = {}
    for layer in LAYERS:
        tree = ast.parse((PKG / layer / "__init__.py").read_text())
        names = next(
            (n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "__all__"), None
        )
        out[layer] = set(ast.literal_eval(names)) if names is not None else set()
    return out


def face_violations(modules: dict[str, Path], offered: dict[str, set[str]]) -> list[str]:
    """Imports of another layer's module that its face does not offer (the front ends at the
    top count as another layer)."""
    found = []
    for name, path in modules.items():
        me = _part(name)
        for imported in _all_imports(path):
            bits = imported.split(".")
            if bits[0] != "cifar_sweeps" or len(bits) < 3 or bits[1] not in LAYERS or bits[1] == me:
                continue
            if bits[2] not in offered[bits[1]]:
                found.append(f"{name} imports {imported}, which {bits[1]}/__init__.py's __all__ does not offer")
    return found


def test_each_layer_offers_a_face_and_no_other_layer_reaches_past_it(tmp_path):
    offered = faces()
    assert all(offered.values()), [layer for layer, names in offered.items() if not names]
    for layer, names in offered.items():  # a face names modules that exist
        for n in names:
            assert (PKG / layer / f"{n}.py").exists() or (PKG / layer / n).is_dir() or layer == "usecases", (layer, n)
    assert face_violations(MODULES, offered) == []
    planted = tmp_path / "ranking.py"
    planted.write_text(
        "from cifar_sweeps.training.models import build_model\nfrom cifar_sweeps.sweepspec import autospace\n"
    )
    assert face_violations({"cifar_sweeps.analysis.ranking": planted}, offered) == [
        "cifar_sweeps.analysis.ranking imports cifar_sweeps.training.models, which training/__init__.py's __all__ "
        "does not offer",
        "cifar_sweeps.analysis.ranking imports cifar_sweeps.sweepspec.autospace, which sweepspec/__init__.py's __all__ "
        "does not offer",
    ]


def test_the_layers_import_downward_only():
    assert {_part(m) for m in MODULES} == {*LAYERS, "top", "bottom"}
    assert layer_violations(MODULES) == []


def test_the_layer_rule_catches_a_wrong_way_import(tmp_path):
    planted = tmp_path / "config.py"
    planted.write_text(
        PKG.joinpath("sweepspec", "config.py").read_text() + "\nfrom cifar_sweeps.tuning import driver\n"
    )
    found = layer_violations({**MODULES, "cifar_sweeps.sweepspec.config": planted})
    assert found == ["cifar_sweeps.sweepspec.config (sweepspec) imports cifar_sweeps.tuning.driver (tuning)"]
    planted.write_text("from cifar_sweeps import code_version\n")  # the package's root hands out the Python API
    assert layer_violations({"cifar_sweeps.store.records": planted}) == [
        "cifar_sweeps.store.records (store) imports cifar_sweeps (top)"
    ]
    planted.write_text("def f():\n    import torch\n")
    assert layer_violations({"cifar_sweeps.service.cache": planted}) == [
        "cifar_sweeps.service.cache (service) imports torch"
    ]


def test_no_import_cycle():
    graph = {m: _imports(p) - {m} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(n) :], n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)


def test_no_function_longer_than_60_lines():
    long = [
        f"{p.name}:{n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for p in MODULES.values()
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno + 1 > 60
    ]
    assert long == []


def test_status_strings_only_in_the_states():
    words = sorted({s.value for s in SweepStatus} | {s.value for s in TrialStatus})
    pattern = re.compile("[\"'](" + "|".join(words) + ")[\"']")
    found = [
        f"{p.relative_to(PKG)}:{i}: {line.strip()}"
        for p in PKG.rglob("*.py")
        if p.name not in ("lifecycle.py", "states.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


HOOKED = {
    "name": "h",
    "fixed": {"model": "mlp", "epochs": 2, "fail_at_epoch": 1},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


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


# The calls that write a row: the ORM's constructors, an UPDATE's values, the store's update.
WRITERS = {"Sweep", "Trial", "values", "update_sweep"}
STATES = re.compile(r"\b(SweepStatus|TrialStatus)\b")


def _status_writes(path: Path) -> list[str]:
    """Where `path` writes a status: `row.status = ...`, `values["status"] = ...`, a
    `{"status": <a state>}` literal, or `status=` in a call that writes a row."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AugAssign | ast.AnnAssign)
            else []
        )
        for t in (x for target in targets for x in (target.elts if isinstance(target, ast.Tuple) else [target])):
            if (
                isinstance(t, ast.Attribute)
                and t.attr == "status"
                and ast.unparse(t.value) != "self"
                or isinstance(t, ast.Subscript)
                and ast.unparse(t.slice) == "'status'"
            ):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}")
        pairs = zip(node.keys, node.values, strict=True) if isinstance(node, ast.Dict) else ()
        if any(isinstance(k, ast.Constant) and k.value == "status" and STATES.search(ast.unparse(v)) for k, v in pairs):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}")
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).split(".")[-1] in WRITERS
            and any(kw.arg == "status" for kw in node.keywords)
        ):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_no_status_written_outside_the_lifecycle():
    """Sweep and trial status change only through lifecycle.py (guarded by states.py's tables);
    the store writes a new row's first status (create_sweep, create_trial) and nothing else."""
    found = [w for p in MODULES.values() if p.name != "lifecycle.py" for w in _status_writes(p)]
    first_rows = [w for w in found if w.startswith("queries.py:")]
    assert [w for w in found if w not in first_rows] == []
    assert len(first_rows) == 2, first_rows  # create_sweep's queued, create_trial's running
    with pytest.raises(ValueError, match="lifecycle"):
        get_store("sqlite://").update_sweep("any", status=SweepStatus.RUNNING)


def test_parameter_types_are_mapped_in_one_module():
    ladder = re.compile(r"isinstance\(p, \(?(Choice|Uniform|LogUniform|QUniform|QLogUniform|RandInt)\b")
    owners = sorted({p.name for p in MODULES.values() if ladder.search(p.read_text())})
    assert owners == ["spaces.py"]


def test_one_leaderboard_read_that_every_front_end_calls():
    """The leaderboard's query runs in the use case only; the routes, the CLI and the Python
    API call the use case."""
    callers = sorted(str(p.relative_to(PKG)) for p in MODULES.values() if ".leaderboard_page(" in p.read_text())
    assert callers == ["store/queries.py", "usecases/leaderboard.py"]  # the store's own thin wrapper, the use case
    for front in ("cli.py", "sdk.py", "service/routes/leaderboard.py"):
        assert "read_board(" in (PKG / front).read_text(), front


def test_one_submit_that_the_routes_call():
    """A sweep is stored and queued by the submit use case only; POST /sweeps and POST
    /sweeps/plan check the body through it too."""
    creators = sorted(str(p.relative_to(PKG)) for p in MODULES.values() if "jobs.create(" in p.read_text())
    assert creators == ["usecases/submit.py"]
    routes = (PKG / "service" / "routes" / "sweeps.py").read_text()
    assert "submit_sweep(" in routes and "plan_spec(" in routes and "plan_for(" not in routes


def test_the_environment_is_read_only_by_settings_and_cluster():
    found = [
        f"{p.relative_to(PKG)}:{i}"
        for p in MODULES.values()
        if p.name not in ("settings.py", "connection.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "os.environ" in line or "getenv(" in line
    ]
    assert found == []


def test_routes_raise_domain_errors_only():
    routes = sorted(p.name for p in (PKG / "service" / "routes").glob("*.py") if "HTTPException" in p.read_text())
    assert len(list((PKG / "service" / "routes").glob("*.py"))) > 5
    assert routes == []


def test_every_error_class_lives_in_errors():
    def is_error(node: ast.ClassDef) -> bool:
        return any(
            re.search(r"(Error|Exception|NotFound|Busy|Full|Unavailable|Fault)$", ast.unparse(b)) for b in node.bases
        )

    found = [
        f"{p.name}:{n.name}"
        for p in MODULES.values()
        if p.name != "errors.py"
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.ClassDef) and is_error(n)
    ]
    assert found == []


SHARED = ("tests.helpers", "tests.fixtures", "tests.conftest")


def imports_of_other_tests(path: Path, tests: Path = REPO / "tests") -> list[str]:
    """The test modules (tests/**/test_*.py) that `path` imports, itself left out (a child
    process's script may import its own module's helpers)."""
    tree = ast.parse(path.read_text())
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    me = (
        ".".join(("tests", *path.resolve().relative_to(tests).with_suffix("").parts))
        if path.is_relative_to(tests)
        else ""
    )
    others = {m for m in names if m.startswith("tests.") and not m.startswith(SHARED)}
    return sorted(others - {"tests", me})


def test_no_test_module_imports_another():
    """What tests share lives in tests/helpers/ (and conftest.py): importing a test module
    collects its tests' module state and ties two files that change apart."""
    tests = REPO / "tests"
    found = {str(p.relative_to(tests)): imports_of_other_tests(p) for p in tests.rglob("*.py")}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_test_import_rule_catches_one(tmp_path):
    planted = tmp_path / "test_planted.py"
    planted.write_text("from tests.unit.service.test_api import something\nfrom tests.helpers.specs import GOOD\n")
    assert imports_of_other_tests(planted) == ["tests.unit.service.test_api"]


def test_the_tests_are_laid_out_in_tier_folders():
    """Every test module sits in a tier's folder (unit by layer, integration, e2e); the unit
    tier's folders are the package's layers, or project/ for what spans them."""
    tests = REPO / "tests"
    loose = sorted(p.name for p in tests.glob("test_*.py"))
    assert loose == []
    tiers = {p.relative_to(tests).parts[0] for p in tests.rglob("test_*.py") if "fixtures" not in p.parts}
    assert tiers == {"unit", "integration", "e2e"}
    layers = {p.name for p in (tests / "unit").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert layers <= {*LAYERS, "project"}, layers


# Folder names a reader from another ecosystem takes for something else (RSpec's and
# pytest's test folders).
MISLEADING_FOLDERS = {"spec", "specs", "test", "tests"}


def naming_violations(modules: dict[str, Path]) -> list[str]:
    """Modules named like their folder (store/store.py says nothing the path didn't), and
    folders named like tests."""
    found = []
    for name in sorted(modules):
        bits = name.split(".")
        if len(bits) > 2 and bits[-1] == bits[-2]:
            found.append(f"{name}: a module named like its folder")
        found += [f"{name}: the folder {b!r} reads as tests" for b in bits[1:-1] if b in MISLEADING_FOLDERS]
    return found


def test_no_module_is_named_like_its_folder_and_no_folder_like_tests():
    assert naming_violations(MODULES) == []
    planted = {"cifar_sweeps.store.store": Path("store.py"), "cifar_sweeps.spec.config": Path("config.py")}
    assert naming_violations(planted) == [
        "cifar_sweeps.spec.config: the folder 'spec' reads as tests",
        "cifar_sweeps.store.store: a module named like its folder",
    ]
