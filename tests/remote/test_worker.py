"""``ctxscope worker`` as a real process: it exits cleanly while its stdin is still open,
says it is alive while a model call runs, and refuses a job it cannot run in one line;
over the test sshd, a stopped remote is given up and a slow one is not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import ctxscope
from ctxscope.cli import main
from ctxscope.core.attention import CaptureConfig
from ctxscope.core.jobs.job import Job, job_to_dict
from ctxscope.core.spec import ModelSpec
from tests.conftest import fast_config
from tests.remote.conftest import exited, points_stored


def start_worker(env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ctxscope", "worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def send_job(proc: subprocess.Popen[bytes], job: dict[str, object], **extra: object) -> None:
    assert json.loads(proc.stdout.readline())["type"] == "hello"
    line = {"type": "job", "protocol": 1, "ctxscope": ctxscope.__version__, "job": job, **extra}
    proc.stdin.write((json.dumps(line) + "\n").encode())
    proc.stdin.flush()


def finish(proc: subprocess.Popen[bytes]) -> tuple[list[dict[str, object]], str, int]:
    """Read to the end with stdin still open, as over a network whose EOF comes late."""
    out = proc.stdout.read()
    code = proc.wait(timeout=120)
    err = proc.stderr.read().decode()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        stream.close()
    return [json.loads(line) for line in out.splitlines()], err, code


def test_the_worker_exits_cleanly_with_its_stdin_open(tiny_config_files) -> None:
    proc = start_worker()
    send_job(proc, job_to_dict(Job("load", (ModelSpec(str(tiny_config_files["llama"]), device="cpu"),))))
    messages, err, code = finish(proc)
    # Was SIGABRT: "Fatal Python error: _enter_buffered_busy: could not acquire lock for <stdin>".
    assert code == 0 and "Fatal Python error" not in err, err
    assert messages[-1]["type"] == "end" and "summary" in messages[-1]


def test_the_worker_says_it_is_alive_while_it_computes(tiny_config_files) -> None:
    # One point of 1 s of calls at least: the budget is wall-clock and a spread of 0 is
    # never reached with 5 samples or more.
    cfg = fast_config((16,), modes=("prefill",), min_repeats=5, max_repeats=100_000, budget_s=1.0, target_rel_iqr=0.0)
    proc = start_worker()
    send_job(proc, job_to_dict(Job("matrix", (ModelSpec(str(tiny_config_files["llama"]), device="cpu"),), cfg)),
             heartbeat_s=0.2)
    messages, err, code = finish(proc)
    assert code == 0, err
    kinds = [m.get("event", m["type"]) for m in messages]
    # The heartbeat comes while nothing else does: during the point, before its result.
    assert "alive" in kinds[kinds.index("SweepStarted"):kinds.index("PointResult")], " ".join(kinds)


@pytest.mark.parametrize("edit, message", [
    (lambda job: job["config"].update(attention={**job["config"]["attention"], "span": [5]}),
     "attention.span [5]: expected two token positions"),  # was IndexError at every length
    (lambda job: job["config"].update(seed=-5), "--seed -5"),
    (lambda job: job["config"].update(lengths=[10**30]), "is out of range"),
])
def test_a_job_the_worker_cannot_run_is_refused_in_one_line(tiny_config_files, edit, message) -> None:
    cfg = fast_config((16,), attention=CaptureConfig(tiles=4))
    job = job_to_dict(Job("matrix", (ModelSpec(str(tiny_config_files["llama"]), device="cpu"),), cfg))
    edit(job)
    proc = start_worker()
    send_job(proc, job)
    messages, err, code = finish(proc)
    assert code == 2 and len(messages) == 1 and messages[0]["type"] == "error", (messages, err)
    assert message in messages[0]["message"] and "\n" not in messages[0]["message"]


def test_threads_beyond_the_hosts_cores_are_refused_there(tiny_config_files) -> None:
    job = job_to_dict(Job("matrix", (ModelSpec(str(tiny_config_files["llama"]), device="cpu"),),
                          fast_config((16,), threads=1_000_000)))
    proc = start_worker()
    send_job(proc, job)
    messages, err, code = finish(proc)
    assert code == 2 and messages[-1]["type"] == "error" and messages[-1]["kind"] == "input", err
    assert f"--threads 1000000: use 1 to {os.cpu_count()}" in messages[-1]["message"]


def test_a_stopped_remote_is_given_up_with_the_points_kept(capsys, ssh_env, tiny_config_files, tmp_path,
                                                           workers) -> None:
    outcome: dict[str, int] = {}

    def sweep() -> None:
        outcome["code"] = main(["sweep", str(tiny_config_files["llama"]), "--lengths", "16,32,64,128,256",
                                "--host", ssh_env.alias, "--remote-python", sys.executable, "--device", "cpu",
                                "--min-repeats", "20", "--max-repeats", "20", "--budget", "30",
                                "--remote-timeout", "5", "--out", str(tmp_path / "r.json")])

    thread = threading.Thread(target=sweep)
    thread.start()
    try:
        assert points_stored(1)  # a point measured over there is in the history
        [worker] = workers
        worker.send_signal(signal.SIGSTOP)  # a stopped remote: the connection is up, nothing comes
        thread.join(120)
        assert not thread.is_alive()
    finally:
        for proc in workers:
            proc.kill()  # SIGKILL ends a stopped process too
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ctxscope: error:")]
    assert outcome["code"] == 3 and len(errors) == 1, err
    assert f"no word from {ssh_env.alias} for 5 s" in errors[0]
    run = json.loads((tmp_path / "r.json").read_text())
    assert run["status"] == "interrupted" and len(run["points"]) >= 1
    assert exited(workers)


def test_a_slow_model_call_is_not_taken_for_a_stall(capsys, ssh_env, tiny_config_files, tmp_path) -> None:
    """A point of 4 s (a wall-clock budget; a spread of 0 is never reached) under a 2 s
    silence limit: the heartbeat (asked for every 0.5 s) keeps the run alive."""
    code = main(["sweep", str(tiny_config_files["llama"]), "--lengths", "16", "--mode", "prefill", "--host",
                 ssh_env.alias, "--remote-python", sys.executable, "--device", "cpu", "--min-repeats", "5",
                 "--max-repeats", "100000", "--budget", "4", "--target-spread", "0", "--remote-timeout", "2",
                 "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "complete"
