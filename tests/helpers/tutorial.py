"""The tutorial page (docs/tutorial.md) read as its test runs it: code blocks, the lines of
expected output that do not change from run to run, and what a run left out."""

from __future__ import annotations

import re

from tests.helpers.paths import REPO

TUTORIAL = REPO / "docs" / "tutorial.md"


BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


SPEC_FILE = re.compile(r"save it as\s+`([\w.-]+\.json)`", re.I)


def blocks(text: str) -> list[tuple[str, str]]:
    """The page's fenced blocks in order: (language, body)."""
    return [(lang, body) for lang, body in BLOCK.findall(text)]


def fixed_lines(expected: str) -> list[str]:
    """The lines of an expected output that hold no digit, whitespace collapsed."""
    out = []
    for line in expected.splitlines():
        line = " ".join(line.split())
        if line and not re.search(r"\d", line) and line != "...":
            out.append(line)
    return out


def missing(expected: str, actual: str) -> list[str]:
    got = {" ".join(line.split()) for line in actual.splitlines()}
    return [line for line in fixed_lines(expected) if line not in got]
