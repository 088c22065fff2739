"""The remote tests' shared fixtures: the test sshd as ctxscope's ssh, and the workers a
test started (found by the process id each handshake names, never by scanning)."""

from __future__ import annotations

import psutil
import pytest

from tests.remote.sshd import LocalSshd


@pytest.fixture
def ssh_env(sshd: LocalSshd, monkeypatch: pytest.MonkeyPatch) -> LocalSshd:
    monkeypatch.setenv("CTXSCOPE_SSH", sshd.ssh_command)
    return sshd


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[psutil.Process]:
    """The remote workers this test started, by the process id each one's handshake
    names (the remote is this machine): nothing else running here is ever looked at."""
    from ctxscope.remote import relay

    started: list[psutil.Process] = []
    real = relay.hello_from_dict

    def record(data: dict, where: str) -> relay.Hello:
        hello = real(data, where)
        try:
            started.append(psutil.Process(hello.pid))  # keeps its start time: a reused pid is not it
        except psutil.NoSuchProcess:
            pass  # already gone
        return hello

    monkeypatch.setattr(relay, "hello_from_dict", record)
    return started


def exited(procs: list[psutil.Process], timeout: float = 60.0) -> bool:
    """Whether every process in ``procs`` has exited, waiting up to ``timeout`` seconds
    for them (a worker ends a moment after its run: on a busy machine, a while)."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not alive


