"""The docs pages and the shell lines in them."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


INLINE = re.compile(r"`((?:cifar-sweeps|curl) [^`]+)`")


def code_lines(text: str, inline: bool = True) -> list[str]:
    """The shell lines of a page: in ``` fences, indented 4 spaces, or (`inline`) inline code
    spans; a trailing backslash joins the next line."""
    out, fenced, joined = [], False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            joined += line.strip()
            if joined.endswith("\\"):
                joined = joined[:-1] + " "
                continue
            out.append(joined)
            joined = ""
        elif inline:
            out += INLINE.findall(line)
    return [re.sub(r"^\$ ", "", x) for x in out]


def commands(text: str, program: str, inline: bool = True) -> list[str]:
    """The page's `program` lines (a curl line with no URL is a mention, not an example)."""
    lines = [x for x in code_lines(text, inline) if x.startswith(program + " ")]
    return [x for x in lines if program != "curl" or "localhost" in x or "://" in x]


def words(line: str) -> list[str]:
    """The words of a synopsis line: comments, `...`, brackets and the other branch of an
    `a | b` choice dropped."""
    line = re.sub(r"\s+#.*$", "", line)
    try:
        words = shlex.split(line.replace("[", " ").replace("]", " "))
    except ValueError:  # an unbalanced quote in a synopsis
        words = line.replace("[", " ").replace("]", " ").split()
    out, skip = [], False
    for w in words:
        if w == "|":
            skip = True
        elif skip:
            skip = False
        elif w != "...":
            out.append(w)
    return out


BENCH = re.compile(r"python (benchmarks/\w+\.py)((?: --?[\w-]+(?: [^\s`|]+)?)*)")


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
