"""A remote that lies, stalls or dies, over a real SSH connection to the test sshd: a
scripted fake worker (tests/remote/fake_worker.py) replays real wire lines with one
fault each. Every case ends in one line naming the host and a non-zero exit, with every
point that arrived kept — never a traceback, a hang, or silence with exit 0."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from ctxscope.cli import main
from ctxscope.core.jobs.job import Job, hello, job_lines
from ctxscope.core.paths import database_path
from ctxscope.core.spec import ModelSpec
from ctxscope.core.wire import dumps
from ctxscope.store import RunStore
from tests.conftest import fast_config

FAKE = Path(__file__).with_name("fake_worker.py")
ARGS = ["--lengths", "16,32", "--device", "cpu", "--min-repeats", "2", "--max-repeats", "3", "--budget", "0.05"]


@pytest.fixture(scope="module")
def real(tiny_config_files) -> dict[str, object]:
    """The lines a real worker writes for a 2-length sweep, by kind, and its hello."""
    spec = ModelSpec(str(tiny_config_files["llama"]), device="cpu")
    lines = list(job_lines(Job("matrix", (spec,), fast_config((16, 32)))))
    by_event: dict[str, list[str]] = {}
    for line in lines:
        message = json.loads(line)
        by_event.setdefault(message.get("event", message["type"]), []).append(line)
    return {"hello": dumps(hello()), "lines": lines, **by_event}


def fake(tmp_path: Path, steps: list[list[object]]) -> str:
    """A --remote-python that runs ``steps`` (called as ``PATH -m ctxscope worker``)."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps(steps), encoding="utf-8")
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} {script}\n")
    path.chmod(0o755)
    return str(path)


def sweep(capsys, ssh_env, model: str, python: str, *extra: str) -> tuple[int, list[str], str]:
    code = main(["sweep", model, *ARGS, "--host", ssh_env.alias, "--remote-python", python, *extra])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.startswith("ctxscope: error:")], err


def stored() -> list[tuple[str, int]]:
    """(status, points) of every run in the history."""
    try:
        with sqlite3.connect(f"file:{database_path()}?mode=ro", uri=True) as db:
            return db.execute("SELECT r.status, (SELECT count(*) FROM points p WHERE p.run_id = r.id) "
                              "FROM runs r").fetchall()
    except sqlite3.Error:  # not there yet (or being created)
        return []


def _huge(real: dict[str, object]) -> str:
    point = json.loads(real["PointResult"][1])
    point["point"]["length"] = 10**30
    return json.dumps(point)


H, J = ["send", "{hello}"], ["read"]  # the handshake, then the job read
START, P0, P1, P2 = ["send", "{SweepStarted}"], ["send", "{PointResult0}"], ["send", "{PointResult1}"], \
    ["send", "{PointResult2}"]
FINISH, END = ["send", "{CellFinished}"], ["send", "{end}"]

# What a worker does wrong → the exit code, the one error line, and what the history
# holds ((status, points) per run). Each was, before: rc 0 in silence, an internal error
# (TypeError, OverflowError), a point lost, or a wait for ever.
WIRE_FAULTS = [
    ("hello, then exit 0", [H, J, ["exit", 0]], [], 3,
     "connection to {host} lost (the worker exited without finishing its job) before the job ended; 0 of 1 run(s) "
     "arrived", []),
    ("hello, then killed", [H, J, ["kill"]], [], 3, "connection to {host} lost (", []),
    ("a point before its run", [H, J, P0, END], [], 2, "a PointResult before its run's SweepStarted", []),
    ("an integer past 64 bits", [H, J, START, P0, ["send", "{huge}"], P2, FINISH, END], [], 3,
     "the integer 10000000000000000000… (31 digits) is out of range", [("failed", 1)]),
    ("end with a summary", [H, J, ["send", '{"type": "end", "summary": {}}']], [], 2,
     "a matrix job ended with a summary, not its runs", []),
    ("end with a maxctx answer", [H, J, ["send", '{"type": "end", "maxctx": {"trials": []}}']], [], 2,
     "a matrix job ended with a maxctx, not its runs", []),
    ("end.runs not a list", [H, J, ["send", '{"type": "end", "runs": "all"}']], [], 2,
     "end.runs: expected a list of run ids", []),
    ("end naming a run never sent", [H, J, ["send", '{"type": "end", "runs": ["20990101-000000-abcdef"]}']], [], 2,
     "naming 1 run(s) of which only 0 arrived", []),
    ("end while a run is open", [H, J, START, P0, ["send", '{"type": "end", "runs": []}']], [], 3, "was still open",
     [("failed", 1)]),
    ("a second run over an open one", [H, J, START, P0, START], [], 3, "started while run", [("failed", 1)]),
    ("silence after a point", [H, J, START, P0, ["wait", 600]], ["--remote-timeout", "3"], 3,
     "no word from {host} for 3 s (a stalled network or a stopped remote); the connection was cut; 1 point(s) of "
     "the run kept", [("interrupted", 1)]),
]


@pytest.mark.parametrize(("steps", "extra", "code", "message", "kept"), [f[1:] for f in WIRE_FAULTS],
                         ids=[f[0] for f in WIRE_FAULTS])
def test_a_wire_fault_is_one_line_with_what_arrived_kept(capsys, ssh_env, real, tiny_config_files, tmp_path, steps,
                                                         extra, code, message, kept) -> None:
    lines = {"hello": real["hello"], "SweepStarted": real["SweepStarted"][0], "CellFinished": real["CellFinished"][0],
             "end": real["end"][0], "huge": _huge(real),
             **{f"PointResult{i}": line for i, line in enumerate(real["PointResult"])}}
    script = [[step[0], lines[step[1][1:-1]]] if step[0] == "send" and step[1].startswith("{") and step[1][1:-1] in
              lines else step for step in steps]
    out = tmp_path / "r.json"
    got, errors, err = sweep(capsys, ssh_env, str(tiny_config_files["llama"]), fake(tmp_path, script),
                             "--out", str(out), *extra)
    assert got == code and len(errors) == 1, err
    assert message.format(host=ssh_env.alias) in errors[0], err
    assert "internal error" not in err and "Traceback" not in err
    assert stored() == kept
    if kept:  # --out holds the same points as the history: nothing that arrived was lost
        assert len(json.loads(out.read_text())["points"]) == kept[0][1]


def test_hostile_text_from_a_remote_is_stripped_and_bounded(capsys, ssh_env, real, tiny_config_files,
                                                            tmp_path) -> None:
    model = str(tiny_config_files["llama"])
    hello_line = json.loads(real["hello"])
    hostile = dict(hello_line, hostname="\x1b[2J\x1b[H" + "h" * 1_000_000, torch="\x1b]0;owned\x07 2.0")
    run_lines = [line for line in real["lines"] if json.loads(line)["type"] != "array"]
    code, errors, err = sweep(capsys, ssh_env, model, fake(tmp_path, [["send", json.dumps(hostile)], ["read"],
                                                                     *[["send", line] for line in run_lines]]))
    assert code == 0, err
    assert "\x1b" not in err and "\x07" not in err and len(err) < 20_000
    with RunStore(database_path()) as store:
        [summary] = store.list_runs()
        host = store.get_run(summary.id).header.environment.host
    assert host.startswith(ssh_env.alias) and "\x1b" not in host and len(host) < 300  # was 1 MB, in every run
    message = "\x1b[31m" + "\x1b[2K boom\n" * 20_000  # 200 KB of colour codes and line breaks
    steps = [["send", real["hello"]], ["read"], ["stderr", "\x1b[2Jremote says \x1b[31mred"],
             ["send", json.dumps({"type": "error", "kind": "internal", "message": message})]]
    code, errors, err = sweep(capsys, ssh_env, model, fake(tmp_path, steps))
    assert code == 2 and len(errors) == 1 and "boom boom" in errors[0] and len(errors[0]) < 1200, err
    assert "\x1b" not in err and "remote says red" in err and len(err) < 20_000


def test_a_cancel_to_a_silent_remote_says_so_without_waiting_out_the_grace(capsys, ssh_env, real, tiny_config_files,
                                                                          tmp_path) -> None:
    """Ctrl-C, and the remote neither stops nor answers: cut after the silence limit
    (not the 120 s cancel grace) with a line about the connection, the point kept."""
    steps = [["send", real["hello"]], ["read"], ["send", real["SweepStarted"][0]], ["send", real["PointResult"][0]],
             ["wait", 600]]
    python = fake(tmp_path, steps)

    def interrupt_after_the_point() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and stored() != [("running", 1)]:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # the CLI's handler: stop after the current model call

    timer = threading.Thread(target=interrupt_after_the_point)
    timer.start()
    code, errors, err = sweep(capsys, ssh_env, str(tiny_config_files["llama"]), python, "--remote-timeout", "3")
    timer.join()
    assert code == 130 and len(errors) == 1, err  # was: silence, then exit 130 after 120 s
    assert f"no word from {ssh_env.alias} for 3 s" in errors[0] and "1 point(s) of the run kept" in errors[0]
    assert stored() == [("cancelled", 1)]
