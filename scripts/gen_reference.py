"""Write docs/reference.md from the code: every field of a sweep spec and of a trial (from the
pydantic models: type, default, bounds, and the comment the code gives it), and every
command of the CLI (from its parser). `tests/unit/project/test_reference.py` fails when the file is not
what this writes.

    python scripts/gen_reference.py            # rewrite docs/reference.md
    python scripts/gen_reference.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "reference.md"
sys.path.insert(0, str(ROOT))


def comments(cls: type) -> dict[str, str]:
    """Each field's comment in the class body: the trailing `# ...` of its line, else the
    comment lines right above it."""
    out: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        text = line.strip()
        if text.startswith("#"):
            above.append(text.lstrip("# ").strip())
            continue
        m = re.match(r"([a-z_][a-z0-9_]*)\s*:", text)
        if m and line.startswith("    ") and not line.startswith("     "):
            tail = text.split("  # ", 1)[1].strip() if "  # " in text else ""
            out[m[1]] = tail or " ".join(above)
        above = []
    return out


def type_text(t: Any) -> str:
    """A type as a reader says it: `int or None`, `list[str]`, `one of 'max', 'min'`."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(type_text(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(a) for a in args)}]"
    if t is type(None):
        return "None"
    if t is Any:
        return "any"
    return getattr(t, "__name__", str(t))


def bounds(info: FieldInfo) -> str:
    parts = []
    for m in info.metadata:
        for key, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("max_length", "at most")):
            v = getattr(m, key, None)
            if v is not None:
                parts.append(f"{sign} {v:g}" if isinstance(v, float) else f"{sign} {v}")
    return ", ".join(parts)


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:
            return "(computed)"
        return f"`{value.model_dump() if isinstance(value, BaseModel) else value}`"
    if info.default is PydanticUndefined:
        return "required"
    return f"`{info.default!r}`" if info.default is not None else "`None`"


def model_table(cls: type[BaseModel], prefix: str = "") -> list[str]:
    notes = comments(cls)
    rows = []
    for name, info in cls.model_fields.items():
        desc = (notes.get(name, "") or (info.description or "")).replace("|", "/")
        rows.append(
            f"| `{prefix}{name}` | {type_text(info.annotation)} | {default_text(info)} | {bounds(info)} | {desc} |"
        )
    return ["| field | type | default | bounds | what it is |", "| --- | --- | --- | --- | --- |", *rows]


def nested_models(cls: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    out = []
    for name, info in cls.model_fields.items():
        for t in typing.get_args(info.annotation) or (info.annotation,):
            if isinstance(t, type) and issubclass(t, BaseModel):
                out.append((name, t))
    return out


def cli_section() -> list[str]:
    from cifar_sweeps.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    lines = []
    for name, p in sub.choices.items():
        lines += [f"### `cifar-sweeps {name}`", "", helps.get(name) or "", ""]
        rows = []
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            flag = ", ".join(a.option_strings) or a.dest.upper()
            default = "" if a.default in (None, argparse.SUPPRESS, False) or not a.option_strings else f"`{a.default}`"
            rows.append(f"| `{flag}` | {default} | {(a.help or '').replace('|', '/')} |")
        if rows:
            lines += ["| argument | default | what it does |", "| --- | --- | --- |", *rows, ""]
    return lines


def presets_section() -> list[str]:
    """Every preset (`cifar-sweeps run NAME`), from its JSON: what it sweeps and how."""
    import json

    from cifar_sweeps.sweepspec import presets
    from cifar_sweeps.sweepspec.schema import parse_spec

    rows = []
    for name in presets.names():
        raw = json.loads(presets.read(name))
        spec = parse_spec(raw)
        budget = f"{spec.time_budget_s:g} s" if spec.time_budget_s else "-"
        model = spec.fixed.get("model") or "searched"
        rows.append(
            f"| `{name}` | {model} | {spec.search.algorithm} | {spec.scheduler.type} | {spec.num_samples} | "
            f"{spec.max_concurrent_trials} | {budget} | {'yes' if spec.refit else 'no'} | "
            f"{(raw.get('description') or '').replace('|', '/')} |"
        )
    return [
        "## The presets",
        "",
        "`cifar-sweeps run NAME` (or `POST /sweeps` with the preset's JSON from `GET /search-spaces/NAME`);",
        "`cifar-sweeps plan NAME`",
        "says what one costs on this machine first.",
        "",
        "| preset | model | search | scheduler | trials | at once | time budget | refit | what it is |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


def render() -> str:
    from cifar_sweeps.sweepspec.config import TrainConfig
    from cifar_sweeps.sweepspec.schema import SweepSpec

    lines = [
        "# Reference",
        "",
        "Written by `python scripts/gen_reference.py` from the code (the pydantic models and the CLI's",
        "parser); `tests/unit/project/test_reference.py` fails when it is stale. The guides explain; this lists.",
        "",
        "## A sweep spec",
        "",
        "The top level of a spec JSON (`POST /sweeps`, `cifar-sweeps run SPEC`). A field left out",
        "takes its default.",
        "",
        *model_table(SweepSpec),
        "",
    ]
    for name, cls in nested_models(SweepSpec):
        lines += [f"### `{name}`", "", *model_table(cls, f"{name}."), ""]
        for inner, icls in nested_models(cls):
            lines += [f"### `{name}.{inner}`", "", *model_table(icls, f"{name}.{inner}."), ""]
    lines += [
        "## A trial",
        "",
        "What `fixed` sets and `params` searches (a trial's config); the defaults are the report's",
        "course code. A plug-in model's own arguments go in `model_args` (docs/your-model.md).",
        "",
        *model_table(TrainConfig),
        "",
        *presets_section(),
        "## The command line",
        "",
        *cli_section(),
    ]
    return "\n".join(line.rstrip() for line in lines).rstrip() + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if docs/reference.md is not current")
    args = p.parse_args()
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print("docs/reference.md is stale: run python scripts/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
