"""A sweep killed with SIGKILL loses at most the point in flight; Ctrl-C keeps a
cancelled run; the core never imports Qt."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctxscope.core.serialize import load_run
from ctxscope.store import RunStore
from ctxscope.store.opening import integrity_problem

REPO = Path(__file__).resolve().parents[2]


def _sweep_process(home: Path, model: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "CTXSCOPE_HOME": str(home), "PYTHONPATH": str(REPO)}
    # Many long points: the process is certainly mid-sweep when it is killed.
    argv = [sys.executable, "-m", "ctxscope", "sweep", model, "--device", "cpu", "--lengths", "16:512:+16",
            "--min-repeats", "3", "--max-repeats", "3", "--quiet", "--threads", "1", *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_points(db: Path, proc: subprocess.Popen, count: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    n = conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
                if n >= count:
                    return n
            except sqlite3.OperationalError:
                pass  # the schema is being created
        time.sleep(0.05)
    raise AssertionError("the sweep stored no points in time")


def test_kill_9_keeps_completed_points(tmp_path: Path, tiny_config_files) -> None:
    proc = _sweep_process(tmp_path, str(tiny_config_files["llama"]))
    try:
        seen = _wait_for_points(tmp_path / "runs.sqlite3", proc, 3)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    with RunStore(tmp_path / "runs.sqlite3") as store:
        assert integrity_problem(store.conn) is None
        [summary] = store.list_runs()
        assert summary.status == "interrupted"  # its process is gone
        run = store.get_run(summary.id)
    assert len(run.points) >= seen
    assert all(p.status == "ok" and p.latency_ms is not None for p in run.points)
    assert [p.length for p in run.points][:2] == [16, 16]


def test_ctrl_c_keeps_a_cancelled_run(tmp_path: Path, tiny_config_files) -> None:
    out = tmp_path / "r.json"
    proc = _sweep_process(tmp_path, str(tiny_config_files["llama"]), "--out", str(out))
    try:
        _wait_for_points(tmp_path / "runs.sqlite3", proc, 2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in err
    run = load_run(out)
    assert run.status == "cancelled" and len(run.points) >= 2
    with RunStore(tmp_path / "runs.sqlite3") as store:
        stored = store.get_run(run.id)
    assert stored.status == "cancelled" and stored.points == run.points


@pytest.mark.parametrize("module", ["ctxscope.core", "ctxscope.core.jobs.sweep", "ctxscope.core.model.loading", "ctxscope.cli",
                                    "ctxscope.store", "ctxscope.report.tabular"])
def test_headless_modules_import_no_qt(module: str) -> None:
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "import ctxscope.cli; ctxscope.cli.build_parser(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'superqt', 'PyQt5', 'PyQt6'));"
            "print(json.dumps(bad))")
    proc = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_report_needs_no_torch() -> None:
    code = ("import sys, json; import ctxscope.report.tabular, ctxscope.core.serialize; "
            "print(json.dumps('torch' in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) is False
