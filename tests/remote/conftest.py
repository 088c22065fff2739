"""The remote tests' shared fixtures: the test sshd as ctxscope's ssh, and the workers a
test started (found by the process id each handshake names, never by scanning)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import psutil
import pytest

from tests.remote.sshd import LocalSshd


class Started(list):  # type: ignore[type-arg]
    """psutil processes, with the executable each one ran (read while it ran)."""

    exes: dict[int, str]


@pytest.fixture
def ssh_env(sshd: LocalSshd, monkeypatch: pytest.MonkeyPatch) -> LocalSshd:
    monkeypatch.setenv("CTXSCOPE_SSH", sshd.ssh_command)
    return sshd


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[psutil.Process]:
    """The remote workers this test started, by the process id each one's handshake
    names (the remote is this machine): nothing else running here is ever looked at."""
    from ctxscope.remote import relay

    started = Started()
    started.exes = {}
    real = relay.hello_from_dict

    def record(data: dict, where: str) -> relay.Hello:
        hello = real(data, where)
        try:
            proc = psutil.Process(hello.pid)  # keeps its start time: a reused pid is not it
            started.exes[hello.pid] = proc.cmdline()[0]
            started.append(proc)
        except psutil.Error:
            pass  # already gone
        return hello

    monkeypatch.setattr(relay, "hello_from_dict", record)
    return started


def exited(procs: list[psutil.Process], timeout: float = 60.0) -> bool:
    """Whether every process in ``procs`` has exited, waiting up to ``timeout`` seconds
    for them (a worker ends a moment after its run: on a busy machine, a while)."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not alive




def bare_python(root: Path, without: tuple[str, ...] = ("ctxscope",)) -> Path:
    """A Python like this one (the same interpreter; this environment's packages, linked)
    that lacks the distributions named in ``without``: a host where ctxscope was never
    installed. Returns its interpreter."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(root)], check=True)
    site = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    ours = Path(sysconfig.get_paths()["purelib"])
    skip = tuple(name.replace("-", "_").lower() for name in without) + ("_editable_impl_ctxscope", "__editable__")
    for entry in sorted(ours.iterdir()):
        if not entry.name.replace("-", "_").lower().startswith(skip):
            (site / entry.name).symlink_to(entry)
    python = root / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import ctxscope"], capture_output=True, text=True, cwd=root)
    assert probe.returncode != 0 and "No module named 'ctxscope'" in probe.stderr, probe.stderr
    return python


def points_stored(at_least: int, history: Path | None = None, timeout: float = 120.0) -> bool:
    """Wait until the history (default: this test's) holds ``at_least`` points, i.e. a
    sweep being watched has measured that far; False after ``timeout`` seconds."""
    from ctxscope.core.paths import database_path

    path = history or database_path()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                if db.execute("SELECT count(*) FROM points").fetchone()[0] >= at_least:
                    return True
        except sqlite3.Error:
            pass  # not created yet
        time.sleep(0.1)
    return False
