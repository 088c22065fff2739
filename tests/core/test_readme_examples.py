"""The README's examples are what the commands print (issue 27, item 10: the estimate
example showed bfloat16 and 15.0 GiB, which its command never printed on a CPU)."""

from __future__ import annotations

import shlex
from pathlib import Path

from ctxscope.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _example(command: str) -> tuple[list[str], list[str]]:
    """The argv after ``$ ctxscope`` and the lines printed under it in the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"$ ctxscope {command}")
    block = text[start:text.index("```", start)].splitlines()
    return shlex.split(block[0])[2:], block[1:]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("│ ").split("│")]


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
