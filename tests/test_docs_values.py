"""The docs' values are the code's: each default in docs/settings.md is the Settings field's,
each preset named in the docs exists, and each `python benchmarks/X.py --flag` line names a
flag that script's parser has. Each check is shown failing on a planted false value."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_sweeps.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ROW = re.compile(r"^\| `CIFAR_SWEEPS_(\w+)` \| ([^|]+) \|", re.M)
NOT_FIELDS = {"SECRETS_DIR"}  # read by settings.load_settings before the fields, documented in the table
BENCH = re.compile(r"python (benchmarks/\w+\.py)((?: --?[\w-]+(?: [^\s`|]+)?)*)")


def _number(text: str) -> float | None:
    m = re.fullmatch(r"`?(-?[\d.]+)`?", text.strip())
    return float(m[1]) if m else None


def settings_mismatches(text: str) -> list[str]:
    """Rows of the settings table whose default is a number, a word or a path that differs
    from the field's default (prose defaults such as "unset" or "loopback names ..." are
    read as words only when the field's default is one)."""
    out = []
    for name, shown in ROW.findall(text):
        field = Settings.model_fields.get(name.lower())
        if name in NOT_FIELDS:
            continue
        if field is None:
            out.append(f"CIFAR_SWEEPS_{name}: no such setting")
            continue
        default, shown = field.default, shown.strip()
        if isinstance(default, bool):
            ok = shown in (("on", "`1`") if default else ("off", "`0`", "unset"))
        elif isinstance(default, int | float):
            ok = _number(shown) == float(default)
        elif isinstance(default, str | Path) and str(default) and re.fullmatch(r"`[^`]+`|[\w.-]+", shown):
            ok = shown.strip("`") == str(default)
        else:
            continue  # a default the table describes in words (computed, empty, a list)
        if not ok:
            out.append(f"CIFAR_SWEEPS_{name}: the docs say {shown}, the code {default!r}")
    return out


def test_every_default_in_the_settings_table_is_the_codes():
    text = (ROOT / "docs" / "settings.md").read_text()
    assert len(ROW.findall(text)) >= 30
    assert settings_mismatches(text) == []


def test_a_planted_false_default_is_found():
    text = (
        (ROOT / "docs" / "settings.md")
        .read_text()
        .replace("| `CIFAR_SWEEPS_MAX_EPOCHS` | 500 |", "| `CIFAR_SWEEPS_MAX_EPOCHS` | 600 |")
    )
    assert settings_mismatches(text) == ["CIFAR_SWEEPS_MAX_EPOCHS: the docs say 600, the code 500"]


def benchmark_flag_problems(pages: list[tuple[str, str]]) -> list[str]:
    """Each `python benchmarks/X.py --flag ...` line's flags against the script's --help."""
    helps: dict[str, str] = {}
    out = []
    for name, text in pages:
        for script, flags in BENCH.findall(text):
            if script not in helps:
                p = subprocess.run(
                    [sys.executable, str(ROOT / script), "--help"],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    timeout=120,
                )
                helps[script] = p.stdout if p.returncode == 0 else ""
                if p.returncode != 0:
                    out.append(f"{name}: {script} --help failed: {p.stderr[-200:]}")
            for flag in [t for t in flags.split() if re.fullmatch(r"--?[A-Za-z][\w-]*", t)]:
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[script]):
                    out.append(f"{name}: {script} has no flag {flag}")
    return out


@pytest.mark.integration  # a process per script: seconds each
def test_every_benchmark_line_in_the_docs_names_real_flags():
    pages = [(p.name, p.read_text()) for p in PAGES]
    assert sum(len(BENCH.findall(t)) for _, t in pages) >= 10
    assert benchmark_flag_problems(pages) == []


def test_a_planted_false_benchmark_flag_is_found():
    pages = [("x.md", "run `python benchmarks/replay.py --task mlp --seedz 200`")]
    assert benchmark_flag_problems(pages) == ["x.md: benchmarks/replay.py has no flag --seedz"]
