"""The docs name only what exists. Every shell example in README.md and docs/ (fenced,
indented, or an inline `code` span) is read: each `cifar-sweeps` line's subcommand and
flags against the CLI's parser, each `curl` line's method, route and query keys against
the OpenAPI document (a body posted as JSON must say so: this API refuses it otherwise),
and every `GET /path` the prose names, every `cifar_sweeps/...` file and module path and
every `search_spaces/*.json` against the tree. The test prints how many of each it read.
(The lines are read, not run: running them is the end-to-end tests' job.)"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import typing
from collections import Counter
from typing import Any

import pytest

from cifar_sweeps.cli import build_parser
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.sweepspec.config import TrainConfig
from cifar_sweeps.sweepspec.schema import RESERVED, SweepSpec
from tests.helpers.docs import PAGES, ROOT, commands, words

ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)")
FILES = re.compile(r"\b((?:cifar_sweeps|search_spaces|benchmarks|scripts|deploy|docker|tests)/[\w./-]*\w)")
MODULES = re.compile(r"\bcifar_sweeps(?:\.\w+)+")


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((a.choices for a in p._actions if isinstance(a, argparse._SubParsersAction)), {})


def cli_problems(line: str, parser: argparse.ArgumentParser) -> list[str]:
    rest, p, at = words(line)[1:], parser, []
    while rest and (subs := _subparsers(p)):
        if rest[0] not in subs:
            return [f"{line!r}: no subcommand {' '.join([*at, rest[0]])!r}"]
        at.append(rest[0])
        p = subs[rest.pop(0)]
    known = set(p._option_string_actions)
    unknown = [w for w in rest if w.startswith("-") and w.split("=")[0] not in known]
    return [f"{line!r}: {' '.join(at)} has no flag {w}" for w in unknown]


def _pattern(path: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")


def _operations(app) -> list[tuple[re.Pattern, str, dict]]:
    """Every route of the app and method: its OpenAPI operation, or {} for the page's own
    routes that the document leaves out."""
    documented = app.openapi()["paths"]
    ops = [(_pattern(path), m.upper(), op) for path, by in documented.items() for m, op in by.items()]
    for path, methods in _routes(app.routes):
        ops += [(_pattern(path), m, {}) for m in methods if path not in documented]
    return ops


def _routes(routes) -> list[tuple[str, set[str]]]:
    """(path, methods) of every route, inside included routers too."""
    out = []
    for r in routes:
        if hasattr(r, "original_router"):  # an included router (its routes carry its prefix)
            out += _routes(r.original_router.routes)
        elif getattr(r, "methods", None):
            out.append((r.path, set(r.methods)))
    return out


def curl_problems(line: str, ops) -> list[str]:
    ws = words(line)
    url = next((w for w in ws if "localhost:" in w or w.startswith("http")), None)
    if url is None:
        return [f"{line!r}: no URL"]
    path, _, query = re.sub(r"^(https?://)?[^/]+", "", url).partition("?")
    method = "POST" if "-F" in ws else "GET"
    if "-X" in ws:
        method = ws[ws.index("-X") + 1]
    found = [op for pattern, m, op in ops if pattern.match(path) and m == method]
    if not found:
        return [f"{line!r}: no route {method} {path}"]
    names = {p["name"] for p in found[0].get("parameters", []) if p["in"] == "query"}
    problems = [f"{line!r}: {path} takes no query key {k!r}" for k in re.findall(r"(\w+)=", query) if k not in names]
    if "-d" in ws and not any(re.match(r"(?i)content-type:\s*application/json", w) for w in ws):
        problems.append(f"{line!r}: posts JSON without -H 'Content-Type: application/json'")
    return problems


def route_problems(text: str, ops) -> list[str]:
    return [
        f"{method} {path}: no such route"
        for method, path in ROUTE.findall(text)
        if not any(pattern.match(re.sub(r"\{[^}]+\}", "x", path)) and m == method for pattern, m, _ in ops)
    ]


def path_problems(text: str) -> list[str]:
    files = [f for f in FILES.findall(text) if "*" not in f and not (ROOT / f).exists()]
    modules = [m for m in MODULES.findall(text) if not _resolves(m)]
    return [f"{f}: no such file" for f in files] + [f"{m}: no such module" for m in modules]


def _resolves(dotted: str) -> bool:
    """A module, or a module's attribute (its longest module prefix, then getattr)."""
    parts = dotted.split(".")
    for n in range(len(parts), 1, -1):
        try:
            found = importlib.util.find_spec(".".join(parts[:n])) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            obj = importlib.import_module(".".join(parts[:n]))
            for attr in parts[n:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    return _operations(create_app(Settings(results_dir=tmp_path_factory.mktemp("r"))))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_docs_name_only_what_exists(page, ops):
    text, parser = page.read_text(), build_parser()
    problems = [x for line in commands(text, "cifar-sweeps") for x in cli_problems(line, parser)]
    problems += [x for line in commands(text, "curl") for x in curl_problems(line, ops)]
    problems += route_problems(text, ops) + path_problems(text)
    assert problems == []


def test_every_page_is_read_and_the_counts_are_shown(ops):
    counts: Counter[str] = Counter()
    for page in PAGES:
        text = page.read_text()
        counts["cifar-sweeps lines"] += len(commands(text, "cifar-sweeps"))
        counts["curl lines"] += len(commands(text, "curl"))
        counts["routes in prose"] += len(ROUTE.findall(text))
        counts["file paths"] += len(FILES.findall(text))
        counts["module paths"] += len(MODULES.findall(text))
    print("docs examples read:", dict(counts))
    assert counts["cifar-sweeps lines"] > 40 and counts["curl lines"] > 20 and counts["routes in prose"] > 10


def test_a_wrong_flag_a_wrong_route_and_a_bare_post_are_caught(ops):
    parser = build_parser()
    assert cli_problems("cifar-sweeps leaderboard --sweep ID --top 5", parser) == []
    assert cli_problems("cifar-sweeps leaderboard --sort-by params", parser) == [
        "'cifar-sweeps leaderboard --sort-by params': leaderboard has no flag --sort-by"
    ]
    assert cli_problems("cifar-sweeps weights fetch resnet50", parser) == []
    assert "no subcommand 'weights pull'" in cli_problems("cifar-sweeps weights pull x", parser)[0]
    assert curl_problems("curl 'localhost:8000/leaderboard?sort=latency_ms'", ops) == []
    assert "takes no query key 'order'" in curl_problems("curl 'localhost:8000/leaderboard?order=x'", ops)[0]
    assert "no route GET /sweep/x" in curl_problems("curl localhost:8000/sweep/x", ops)[0]
    assert "without -H" in curl_problems("curl -X POST localhost:8000/sweeps -d @s.json", ops)[0]
    assert path_problems("see cifar_sweeps/sweepspec/nothing.py and cifar_sweeps.sweepspec.nothing") == [
        "cifar_sweeps/sweepspec/nothing.py: no such file",
        "cifar_sweeps.sweepspec.nothing: no such module",
    ]


def _spec_field(path: str) -> bool:
    """A dotted SweepSpec field (`search.algorithm`); `*` stands for any key of a dict."""
    model: Any = SweepSpec
    for name in path.split("."):
        if name == "*":
            return True
        fields = getattr(model, "model_fields", None)
        if fields is None or name not in fields:
            return False
        model = next((a for a in _types(fields[name].annotation) if hasattr(a, "model_fields")), None)
    return True


def _types(annotation) -> list:
    args = typing.get_args(annotation)
    return [t for a in args for t in _types(a)] if args else [annotation]


def spec_table_problems(text: str) -> list[str]:
    """The first column of docs/spec.md's field table: each name a field of the spec."""
    names = [n for row in re.findall(r"^\| (`[^|]+)\|", text, re.M) for n in re.findall(r"`([\w.*]+)`", row)]
    return [f"{n}: no such spec field" for n in names if n != "choice" and not _spec_field(n)]


def test_the_spec_page_names_every_field_and_only_fields():
    text = (ROOT / "docs" / "spec.md").read_text()
    assert spec_table_problems(text) == []
    undocumented = [f for f in TrainConfig.model_fields if f not in RESERVED and f"`{f}`" not in text]
    assert undocumented == [], "trial parameters docs/spec.md does not name"
    assert spec_table_problems("| `search.algorithms` | x |") == ["search.algorithms: no such spec field"]
