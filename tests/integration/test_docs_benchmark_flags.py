"""Every benchmark command the docs show names flags the benchmark's own parser takes (each
script's --help, run)."""

from __future__ import annotations

import pytest

from tests.helpers.docs import BENCH, PAGES, benchmark_flag_problems


@pytest.mark.integration  # a process per script: seconds each
def test_every_benchmark_line_in_the_docs_names_real_flags():
    pages = [(p.name, p.read_text()) for p in PAGES]
    assert sum(len(BENCH.findall(t)) for _, t in pages) >= 10
    assert benchmark_flag_problems(pages) == []
