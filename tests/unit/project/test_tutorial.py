"""The tutorial's page has the steps a reader needs, and its check finds a changed header."""

from __future__ import annotations

from tests.helpers.tutorial import SPEC_FILE, TUTORIAL, blocks, missing


def test_the_page_has_the_steps_a_reader_needs():
    text = TUTORIAL.read_text()
    kinds = [lang for lang, _ in blocks(text)]
    assert kinds.count("json") == 1 and SPEC_FILE.search(text)
    commands = [line for lang, body in blocks(text) if lang == "sh" for line in body.splitlines()]
    for step in ("plan", "run", "leaderboard", "analyze", "repeat", "export"):
        assert any(line.startswith(f"cifar-sweeps {step} ") for line in commands), step
    assert kinds.count("text") >= 5  # the output to expect, after the steps that print


def test_missing_finds_a_changed_header():
    expected = "rank  trial  model  val_acc\n   1  sw-1-refit  airbench  0.91"
    assert missing(expected, "rank trial model val_acc\n 1 sw-9 airbench 0.50") == []
    assert missing(expected, "rank trial model test_acc\n") == ["rank trial model val_acc"]
