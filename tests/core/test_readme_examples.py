"""The README's and the manual's examples are what the commands print (issue 27, item 10:
the estimate example showed bfloat16 and 15.0 GiB, which its command never printed on a
CPU). Since issue 25 the manual is in docs/*.md: every page is searched, so an example
that moves to another page is still checked."""

from __future__ import annotations

import shlex
from pathlib import Path

from ctxscope.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))


def _example(command: str) -> tuple[list[str], list[str]]:
    """The argv after ``$ ctxscope`` and the lines printed under it, from the one page that has it."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        start = text.find(f"$ ctxscope {command}")
        if start >= 0:
            found.append((page, text[start:text.index("```", start)].splitlines()))
    assert len(found) == 1, f"`$ ctxscope {command}` is in {[p.name for p, _ in found]}, not in exactly one page"
    block = found[0][1]
    return shlex.split(block[0])[2:], block[1:]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("│ ").split("│")]


def test_the_pages_are_found() -> None:
    assert (ROOT / "docs" / "estimate-and-maxctx.md") in PAGES and len(PAGES) > 2


def test_the_estimate_example_is_what_the_command_prints(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    argv, shown = _example("estimate preset:llama-3.1-8b")
    assert "--gpu" in argv  # the GPU it predicts for: on a CPU, auto would be float32
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == shown[0]
    rows = [_cells(line) for line in printed if line.startswith("│")]
    expected = [_cells(line) for line in shown if line.startswith("│")]
    assert expected and rows == expected
