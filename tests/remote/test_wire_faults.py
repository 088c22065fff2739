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
from ctxscope.core.jobs import Job, hello, job_lines
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


def test_a_worker_that_ends_after_its_handshake_is_an_error(capsys, ssh_env, real, tiny_config_files,
                                                            tmp_path) -> None:
    model = str(tiny_config_files["llama"])
    for ending in (["exit", 0], ["kill"]):
        code, errors, err = sweep(capsys, ssh_env, model, fake(tmp_path, [["send", real["hello"]], ["read"], ending]))
        assert code == 3 and len(errors) == 1, err  # was exit 0 with one 'running on' line
        assert f"connection to {ssh_env.alias} lost (" in errors[0] and "0 of 1 run(s) arrived" in errors[0]
    assert stored() == []


def test_points_before_their_run_starts_are_refused(capsys, ssh_env, real, tiny_config_files, tmp_path) -> None:
    steps = [["send", real["hello"]], ["read"], ["send", real["PointResult"][0]], ["send", real["end"][0]]]
    code, errors, err = sweep(capsys, ssh_env, str(tiny_config_files["llama"]), fake(tmp_path, steps))
    assert code == 2 and len(errors) == 1 and "a PointResult before its run's SweepStarted" in errors[0], err


def test_an_integer_past_64_bits_ends_the_run_keeping_what_arrived(capsys, ssh_env, real, tiny_config_files,
                                                                   tmp_path) -> None:
    points = real["PointResult"]
    huge = json.loads(points[1])
    huge["point"]["length"] = 10**30
    steps = [["send", real["hello"]], ["read"], ["send", real["SweepStarted"][0]], ["send", points[0]],
             ["send", json.dumps(huge)], ["send", points[2]], ["send", real["CellFinished"][0]],
             ["send", real["end"][0]]]
    out = tmp_path / "r.json"
    code, errors, err = sweep(capsys, ssh_env, str(tiny_config_files["llama"]), fake(tmp_path, steps),
                              "--out", str(out))
    assert code == 3 and len(errors) == 1 and "is out of range" in errors[0], err  # was 'internal error: OverflowError'
    assert stored() == [("failed", 1)] and len(json.loads(out.read_text())["points"]) == 1


@pytest.mark.parametrize("end, message", [
    ({"type": "end", "summary": {}}, "a matrix job ended with a summary, not its runs"),
    ({"type": "end", "maxctx": {"trials": []}}, "a matrix job ended with a maxctx, not its runs"),
    ({"type": "end", "runs": "all"}, "end.runs: expected a list of run ids"),
    ({"type": "end", "runs": ["20990101-000000-abcdef"]}, "naming 1 run(s) of which only 0 arrived"),
])
def test_an_end_of_the_wrong_shape_is_one_line(capsys, ssh_env, real, tiny_config_files, tmp_path, end,
                                               message) -> None:
    steps = [["send", real["hello"]], ["read"], ["send", json.dumps(end)]]
    code, errors, err = sweep(capsys, ssh_env, str(tiny_config_files["llama"]), fake(tmp_path, steps))
    assert code == 2 and len(errors) == 1 and message in errors[0], err  # was 'internal error: TypeError'
    assert "internal error" not in err and "Traceback" not in err


def test_an_end_while_a_run_is_open_keeps_the_run(capsys, ssh_env, real, tiny_config_files, tmp_path) -> None:
    steps = [["send", real["hello"]], ["read"], ["send", real["SweepStarted"][0]],
             ["send", real["PointResult"][0]], ["send", json.dumps({"type": "end", "runs": []})]]
    code, errors, err = sweep(capsys, ssh_env, str(tiny_config_files["llama"]), fake(tmp_path, steps))
    assert code == 3 and len(errors) == 1 and "was still open" in errors[0], err
    assert stored() == [("failed", 1)]


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


def test_a_remote_that_falls_silent_is_given_up_with_the_points_kept(capsys, ssh_env, real, tiny_config_files,
                                                                     tmp_path) -> None:
    steps = [["send", real["hello"]], ["read"], ["send", real["SweepStarted"][0]], ["send", real["PointResult"][0]],
             ["wait", 600]]
    code, errors, err = sweep(capsys, ssh_env, str(tiny_config_files["llama"]), fake(tmp_path, steps),
                              "--remote-timeout", "3")
    assert code == 3 and len(errors) == 1, err  # was: waiting for ever
    assert f"no word from {ssh_env.alias} for 3 s" in errors[0] and "1 point(s) of the run kept" in errors[0]
    assert stored() == [("interrupted", 1)]


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
