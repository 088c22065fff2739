"""Regenerate ``tests/durations.txt`` (the record the ``slow`` marker is read from):
run the whole suite once with per-test durations and keep pytest's table.

    QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 python tests/durations.py

Run it on an idle machine: the record says how long each test took there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0",
                           "--durations-min=1", str(HERE)], capture_output=True, text=True, cwd=HERE.parent, env=env)
    lines = [line for line in done.stdout.splitlines() if re.match(r"^\d+\.\d+s (call|setup|teardown) ", line)]
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    (HERE / "durations.txt").write_text("\n".join(lines + [f"# {summary}"]) + "\n", encoding="utf-8")
    for line in done.stdout.splitlines():  # what failed, if anything, is said here too
        if line.startswith(("FAILED ", "ERROR ")):
            print(line)
    print(f"{len(lines)} durations; {summary}")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
