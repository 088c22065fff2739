"""``runs rm`` of a run another process is writing is refused (the sweep stored it
again, whole, at its next point); once that sweep has ended, the run can go."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ctxscope.cli import main


def test_a_run_being_measured_cannot_be_deleted(capsys, tiny_config_files, ctxscope_home: Path) -> None:
    history = ctxscope_home / "runs.sqlite3"
    sweep = subprocess.Popen([sys.executable, "-m", "ctxscope", "sweep", str(tiny_config_files["llama"]), "--device",
                              "cpu", "--lengths", "16,32,64,128,256", "--min-repeats", "50", "--max-repeats", "50",
                              "--budget", "60", "--quiet"], env={**os.environ, "CTXSCOPE_HOME": str(ctxscope_home)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        run_id = None
        deadline = time.monotonic() + 120
        while run_id is None and time.monotonic() < deadline:  # until its first point is in the history
            try:
                with sqlite3.connect(f"file:{history}?mode=ro", uri=True) as db:
                    row = db.execute("SELECT run_id FROM points LIMIT 1").fetchone()
                    run_id = row[0] if row else None
            except sqlite3.Error:
                pass
            time.sleep(0.1)
        assert run_id is not None and sweep.poll() is None
        code = main(["runs", "rm", run_id])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err  # was 'deleted', then stored again by the sweep
        assert f"run {run_id} is being measured right now (process {sweep.pid})" in err
        sweep.send_signal(signal.SIGINT)  # the sweep ends (cancelled) with what it measured
        assert sweep.wait(timeout=120) == 130
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        sweep.stderr.close()
    main(["runs", "list", "--format", "json"])
    [row] = json.loads(capsys.readouterr().out)
    assert row["id"] == run_id and row["status"] == "cancelled"
    assert main(["runs", "rm", run_id]) == 0  # its writer is gone: deleted, for good
    capsys.readouterr()
    main(["runs", "list", "--format", "json"])
    assert json.loads(capsys.readouterr().out) == []
