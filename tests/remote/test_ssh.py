"""Sweeps over a real SSH connection to a throwaway sshd on 127.0.0.1: the same run as
locally, cancel, a dropped connection, a missing remote ctxscope, a version mismatch,
garbage on the remote's stdout."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

import ctxscope
from ctxscope.cli import main
from ctxscope.core.events import PointResult
from ctxscope.core.jobs.job import Job
from ctxscope.core.jobs.matrix import CellFinished
from ctxscope.core.paths import database_path
from ctxscope.core.spec import ModelSpec
from ctxscope.remote.ssh import RemoteTarget, run_remote
from ctxscope.store import RunStore
from tests.conftest import fast_config
from tests.remote.conftest import exited, points_stored

FAST = ["--min-repeats", "2", "--max-repeats", "3", "--budget", "0.05", "--device", "cpu"]
PYTHON = sys.executable  # the remote is this machine: its worker is this environment's ctxscope


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def wrapper(tmp_path: Path, name: str, body: str) -> str:
    """A stand-in for the remote Python (called as ``PATH -m ctxscope worker``)."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_a_sweep_over_ssh_is_the_same_run_as_here(capsys, ssh_env, tiny_config_files, tmp_path, workers) -> None:
    model = str(tiny_config_files["llama"])
    args = [model, "--lengths", "16,32", "--attention", "--attention-tiles", "4", *FAST]
    code, _, err = cli(capsys, "sweep", *args, "--out", str(tmp_path / "here.json"))
    assert code == 0, err
    code, out, err = cli(capsys, "sweep", *args, "--host", ssh_env.alias, "--remote-python", PYTHON,
                         "--out", str(tmp_path / "there.json"))
    assert code == 0, err
    here, there = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("here", "there"))
    assert there["environment"]["host"].startswith(ssh_env.alias) and here["environment"].get("host") is None
    assert there["status"] == here["status"] == "complete"
    assert there["model"] == here["model"]
    same = {k: v for k, v in here["settings"].items() if k != "threads"}
    assert {k: v for k, v in there["settings"].items() if k != "threads"} == same
    assert [(p["mode"], p["length"], p["status"], p["memory"]["kv_cache_bytes"]) for p in there["points"]] == \
           [(p["mode"], p["length"], p["status"], p["memory"]["kv_cache_bytes"]) for p in here["points"]]
    assert [(a["length"], a["layer"], a["status"]) for a in there["attention"]] == \
           [(a["length"], a["layer"], a["status"]) for a in here["attention"]]
    assert (tmp_path / f"{there['id']}.attention.npz").exists()  # the maps travelled
    store = RunStore(database_path())
    try:
        stored = store.get_run(there["id"])
    finally:
        store.close()
    assert stored.status == "complete" and len(stored.points) == 4 and stored.header.environment.host
    assert workers and exited(workers)


def test_cancel_reaches_the_remote_within_a_model_call(ssh_env, tiny_config_files, workers) -> None:
    spec = ModelSpec(str(tiny_config_files["llama"]), device="cpu")
    cfg = fast_config((16, 32, 64, 128), min_repeats=100, max_repeats=100, budget_s=60.0)
    stop = threading.Event()
    gen = run_remote(RemoteTarget(ssh_env.alias, PYTHON), Job("matrix", (spec,), cfg), stop=stop)
    events = []
    while True:
        try:
            event = next(gen)
        except StopIteration as done:
            results = done.value
            break
        events.append(event)
        if isinstance(event, PointResult):
            stop.set()
    [run] = results
    # 100 calls per point: had the stop waited for the end of a point (or of the run),
    # more points would have arrived. Counted, not timed: a busy machine is slow, not wrong.
    assert run.status == "cancelled" and 1 <= len(run.points) <= 2, [p.length for p in run.points]
    assert isinstance(events[-1], CellFinished) and events[-1].result.status == "cancelled"
    assert workers and exited(workers)


def test_a_dropped_connection_keeps_every_point(capsys, ssh_env, tiny_config_files, tmp_path, workers) -> None:
    model = str(tiny_config_files["llama"])
    outcome: dict[str, object] = {}

    def sweep() -> None:
        outcome["code"] = main(["sweep", model, "--lengths", "16,32,64,128,256", "--host", ssh_env.alias,
                                "--remote-python", PYTHON, "--device", "cpu", "--min-repeats", "20",
                                "--max-repeats", "20", "--budget", "30", "--out", str(tmp_path / "r.json")])

    thread = threading.Thread(target=sweep)
    thread.start()
    assert points_stored(2)  # a point measured over there is in the history
    for session in psutil.Process(ssh_env.pid).children():  # the connection, cut from the server's side
        session.kill()
    thread.join(60)
    assert not thread.is_alive()
    _, err = capsys.readouterr()
    assert outcome["code"] == 3
    lines = [line for line in err.splitlines() if line.startswith("ctxscope: error:")]
    assert len(lines) == 1 and f"connection to {ssh_env.alias} lost" in lines[0], err
    run = json.loads((tmp_path / "r.json").read_text())
    assert run["status"] == "interrupted" and len(run["points"]) >= 2
    store = RunStore(database_path())
    try:
        stored = store.get_run(run["id"])
    finally:
        store.close()
    assert stored.status == "interrupted" and len(stored.points) == len(run["points"])
    assert workers and exited(workers)  # the worker notices its stdin is gone and ends


def test_a_missing_remote_ctxscope_says_so(capsys, ssh_env, tiny_config_files) -> None:
    model = str(tiny_config_files["llama"])
    code, _, err = cli(capsys, "sweep", model, "--host", ssh_env.alias, "--remote-python", "/nowhere/python", *FAST)
    assert code == 2
    assert err.startswith(f"ctxscope: error: cannot run ctxscope on {ssh_env.alias}: /nowhere/python is not there")
    assert "remote stderr:" in err and "/nowhere/python" in err.split("remote stderr:")[1]  # shown, not swallowed
    code, _, err = cli(capsys, "sweep", model, "--host", ssh_env.alias, "--remote-python", "/usr/bin/python3", *FAST)
    if "No module named ctxscope" in err:  # a system Python without ctxscope
        assert code == 2 and "/usr/bin/python3 has no ctxscope installed" in err.splitlines()[0]
    code, _, err = cli(capsys, "sweep", model, "--host", "-oProxyCommand=touch /tmp/x", *FAST)
    assert code == 2 and "give a destination" in err


def test_a_version_mismatch_is_refused_naming_both(capsys, ssh_env, tiny_config_files, tmp_path) -> None:
    old = wrapper(tmp_path, "old-python", f"exec {PYTHON} -c \"import sys, ctxscope; ctxscope.__version__ = '0.0.1'; "
                                          "from ctxscope.cli import main; sys.exit(main(['worker']))\"")
    code, _, err = cli(capsys, "sweep", str(tiny_config_files["llama"]), "--host", ssh_env.alias,
                       "--remote-python", old, *FAST)
    assert code == 2
    first = err.splitlines()[0]
    assert "ctxscope 0.0.1" in first and f"ctxscope {ctxscope.__version__}" in first and ssh_env.alias in first
    assert json.loads(cli(capsys, "runs", "list", "--format", "json")[1]) == []


def test_garbage_on_the_remote_stdout_ends_the_run_in_one_line(capsys, ssh_env, tiny_config_files, tmp_path,
                                                                  workers) -> None:
    model = str(tiny_config_files["llama"])
    banner = wrapper(tmp_path, "banner", f"echo 'Welcome to gpu-box'; exec {PYTHON} -m ctxscope worker")
    code, _, err = cli(capsys, "sweep", model, "--host", ssh_env.alias, "--remote-python", banner, *FAST)
    assert code == 2 and "login script" in err.splitlines()[0] and "Welcome to gpu-box" in err.splitlines()[0]
    # A worker whose stream is corrupted after its first points.
    corrupt = tmp_path / "corrupt.py"  # passes lines on, then one that is not a message after the 2nd point
    corrupt.write_text("import sys\nn = 0\nfor line in sys.stdin:\n    sys.stdout.write(line)\n"
                       "    n += '\"PointResult\"' in line\n    if n == 2:\n        sys.stdout.write('rm -rf /\\n')\n"
                       "        n += 1\n    sys.stdout.flush()\n")
    noisy = wrapper(tmp_path, "noisy", f"{PYTHON} -m ctxscope worker | {PYTHON} -u {corrupt}")
    code, _, err = cli(capsys, "sweep", model, "--lengths", "16,32,64", "--host", ssh_env.alias,
                       "--remote-python", noisy, "--out", str(tmp_path / "r.json"), *FAST)
    assert code == 3
    lines = [line for line in err.splitlines() if line.startswith("ctxscope: error:")]
    assert len(lines) == 1 and "not a ctxscope message" in lines[0] and "'rm -rf /'" in lines[0]
    run = json.loads((tmp_path / "r.json").read_text())
    assert run["status"] == "failed" and len(run["points"]) == 2
    assert workers and exited(workers)


def test_maxctx_over_ssh(capsys, ssh_env, tiny_config_files) -> None:
    code, out, err = cli(capsys, "maxctx", str(tiny_config_files["llama"]), "--host", ssh_env.alias,
                         "--remote-python", PYTHON, "--device", "cpu", "--memory-budget", "4GiB",
                         "--granularity", "256", "--format", "json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["host"] == ssh_env.alias and answer["largest_fit"] == 512 and answer["trials"]


def test_ssh_keeps_the_connection_probed(monkeypatch) -> None:
    """ssh's own keepalive is on whatever ~/.ssh/config says (command-line options win),
    so a dead network ends ssh too; the destination still comes after "--"."""
    monkeypatch.delenv("CTXSCOPE_SSH", raising=False)
    argv = RemoteTarget("me@box", "/opt/py").command()
    assert argv[0] == "ssh" and argv[argv.index("--") + 1] == "me@box"
    options = [argv[i + 1] for i, a in enumerate(argv[:argv.index("--")]) if a == "-o"]
    assert {"BatchMode=yes", "ServerAliveInterval=15", "ServerAliveCountMax=4"} <= set(options)
    assert argv[-1] == "/opt/py -m ctxscope worker"
