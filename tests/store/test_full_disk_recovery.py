"""The advice after a full disk works: ``ctxscope runs import FILE`` of the run file it
names completes the part of the run the history holds, once there is room (it was
refused as "already in the history", the partial run having been stored too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ctxscope.core.serialize import load_run
from ctxscope.store import RunStore
from tests.core.quality_fixtures import needs_minilm, tiny_lm, user_text  # noqa: F401
from tests.store.test_history_faults import FAST, REPO, error_lines, fill, mounts, run_cli  # noqa: F401

# The sweep runs in its own process, as a user's does: the run it leaves in the history
# reads as interrupted once that process has gone. With FILL_AT_QUALITY set, the disk
# fills for real at the first quality record (filling it from outside could not hit
# that moment).
SWEEP = """
import os, sys
from ctxscope.cli import main
from ctxscope.core.quality.records import QualityPoint
from ctxscope.store.recorder import RunRecorder
from tests.store.test_history_faults import fill

record, home = RunRecorder.record, os.environ["CTXSCOPE_HOME"]

def filling(self, event):
    if isinstance(event, QualityPoint) and not os.path.exists(os.path.join(home, "filler")):
        fill(__import__("pathlib").Path(home))
    record(self, event)

if os.environ.get("FILL_AT_QUALITY"):
    RunRecorder.record = filling
sys.exit(main(sys.argv[1:]))
"""


def sweep(home: Path, *argv: str, fill_at_quality: bool = False) -> tuple[int, str]:
    env = {**os.environ, "CTXSCOPE_HOME": str(home), "PYTHONPATH": str(REPO)}
    if fill_at_quality:
        env["FILL_AT_QUALITY"] = "1"
    proc = subprocess.run([sys.executable, "-c", SWEEP, "sweep", *argv, *FAST], env=env, capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stderr


def advice(line: str) -> str:
    """The file the error line says to import later."""
    assert "(later: ctxscope runs import " in line, line
    return line.split("(later: ctxscope runs import ")[1].split(")")[0]


def test_the_printed_recovery_completes_the_partial_run(capsys, monkeypatch, mounts, tmp_path: Path,
                                                        tiny_config_files) -> None:
    home = mounts.tmpfs(tmp_path / "home", "2m")
    monkeypatch.setenv("CTXSCOPE_HOME", str(home))
    RunStore(home / "runs.sqlite3").close()
    fill(home, leave=96 * 1024)  # a few points fit, not all of them
    code, err = sweep(home, str(tiny_config_files["llama"]), "--lengths", "16:512:+16", "--mode", "prefill",
                      "--out", str(tmp_path / "run.json"))
    [line] = error_lines(err)
    assert code == 2 and "no space left for the run history" in line
    (home / "filler").unlink()  # room again
    code, _, err = run_cli(capsys, "runs", "import", advice(line))
    assert code == 0, err
    assert "completed run" in err and "32 point(s), the history held" in err
    [row] = json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])
    assert row["status"] == "complete" and row["points_total"] == 32
    code, _, err = run_cli(capsys, "runs", "import", advice(line))  # whole now: a second import is refused
    assert code == 2 and "already in the history" in err


@needs_minilm
def test_a_disk_that_fills_during_the_quality_pass(capsys, monkeypatch, mounts, tmp_path: Path, tiny_lm: Path,
                                                   user_text: Path) -> None:
    home = mounts.tmpfs(tmp_path / "home", "2m")
    monkeypatch.setenv("CTXSCOPE_HOME", str(home))
    code, err = sweep(home, str(tiny_lm), "--lengths", "128,256", "--quality", "loss", "--quality-text",
                      str(user_text), "--quality-targets", "16", "--quality-windows", "2", fill_at_quality=True)
    [line] = error_lines(err)
    assert code == 2 and "no space left" in line
    (home / "filler").unlink()
    code, _, err = run_cli(capsys, "runs", "import", advice(line))
    assert code == 0 and "completed run" in err, err
    [row] = json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])
    with RunStore(home / "runs.sqlite3", readonly=True) as store:
        run = store.get_run(row["id"])
    assert run.status == "complete" and len(run.quality.loss) == 2
    assert run.quality == load_run(advice(line)).quality
