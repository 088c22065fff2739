"""Run a job on another machine over the user's own OpenSSH: ``ssh HOST ctxscope worker``.

ctxscope stores no secret and never prompts: ssh runs with ``BatchMode=yes``, so keys,
the agent, ``~/.ssh/config`` (aliases, ports, jump hosts) decide, exactly as for a
plain ``ssh HOST``. The remote's stdout carries only protocol lines, validated as they
arrive; its stderr is kept and shown whenever something fails.
"""

from __future__ import annotations

import os
import queue
import shlex
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import ctxscope
from ctxscope.core.errors import BadInputError, DeviceError
from ctxscope.core.events import JobEvent, JobResult
from ctxscope.core.jobs.job import Job, job_to_dict
from ctxscope.core.wire import PROTOCOL, WireError
from ctxscope.remote.channel import Channel
from ctxscope.remote.relay import Hello, Relay, RemoteError, RemoteLost, with_stderr

#: How long the remote may take to answer (ssh connect + importing torch there).
HELLO_TIMEOUT_S = 180.0
#: After a cancel, how long the remote may take to end its run before the connection is cut.
CANCEL_GRACE_S = 120.0
#: After the handshake, how long the remote may say nothing (its worker sends a heartbeat
#: every 10 s while a model call runs) before the connection is given up as stalled.
SILENCE_S = 60.0
#: ssh's own keepalive, so a dead network ends ssh too ("Timeout, server not responding")
#: after 4 unanswered probes 15 s apart; options on the command line win over ~/.ssh/config.
KEEPALIVE = ("-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")


def check_host(host: str) -> str:
    """A destination ssh accepts as one argument: ``user@host``, ``host`` or an alias."""
    host = host.strip()
    if not host or host.startswith("-") or any(c.isspace() or ord(c) < 32 for c in host):
        raise BadInputError(f"--host {host!r}: give a destination such as user@gpu-box or an ~/.ssh/config alias")
    return host


@dataclass(frozen=True, slots=True)
class RemoteTarget:
    """Where to run: an SSH destination and, when ctxscope is not on its PATH, the
    Python to run it with. ``ssh`` is the client command (``$CTXSCOPE_SSH``, default
    ``ssh``), e.g. ``ssh -F ./ssh_config``. ``install``: bring this ctxscope there
    (:mod:`ctxscope.remote.install`; ``python``, default ``python3``, is then the
    interpreter whose packages it uses)."""

    host: str
    python: str | None = None
    ssh: tuple[str, ...] = ()
    install: bool = False

    def command(self, remote: list[str] | None = None) -> list[str]:
        """The ssh command line running ``remote`` (default: the worker) over there."""
        client = list(self.ssh) or shlex.split(os.environ.get("CTXSCOPE_SSH", "ssh"))
        worker = [self.python, "-m", "ctxscope", "worker"] if self.python else ["ctxscope", "worker"]
        # "--" before the host: a destination can never be read as an ssh option.
        return [*client, "-T", "-o", "BatchMode=yes", *KEEPALIVE, "--", check_host(self.host),
                shlex.join(remote or worker)]


def _why_ended(rc: int | None, tail: str, target: RemoteTarget) -> str:
    last = next((row.strip() for row in reversed(tail.splitlines()) if row.strip()), "")
    if rc == 127 or "command not found" in last or "No such file" in last:
        where = f"{target.python} is not there" if target.python else "ctxscope is not on the PATH of a " \
                                                                       "non-interactive shell there"
        if target.install:
            return f"{target.python or 'python3'} is not there (pass --remote-python PATH)"
        return f"{where} (pass --remote-install to install this ctxscope there, or --remote-python PATH)"
    if "No module named ctxscope" in tail:
        return f"{target.python} has no ctxscope installed (pass --remote-install to install this one there)"
    if rc is not None and rc < 0:
        return f"ssh was killed by signal {-rc}"
    if last:
        return last[:200]
    if rc == 0:
        return "the worker exited without finishing its job"
    if rc is not None and 128 < rc < 160:  # the remote shell's status for a process killed by a signal
        return f"the remote process was killed by signal {rc - 128}"
    return f"ssh exited with status {rc}"


def run_remote(target: RemoteTarget, job: Job, *, stop: threading.Event | None = None,
               confirm: Callable[[Any], bool] | None = None, on_hello: Callable[[Hello], None] | None = None,
               hello_timeout: float = HELLO_TIMEOUT_S, silence_s: float = SILENCE_S,
               say: Callable[[str], None] = lambda text: None) -> Generator[JobEvent, None, JobResult]:
    """Run ``job`` on ``target``, yielding the events the remote measures as they arrive.

    Returns what the job returns (the matrix's runs, a max-context answer, a model
    summary). A stream that breaks off — the connection dropped, the remote died or
    fell silent for ``silence_s`` seconds, a line that is not a ctxscope message — ends
    the open run with every point that arrived (``interrupted``, or ``failed`` for
    garbage) and one line naming the host and why; when no run was open, or the job is
    not a sweep, that line is a :class:`RemoteLost` (exit 3): a job that did not end is
    never a silent success. Raises :class:`RemoteError` when nothing ran (unreachable,
    no ctxscope, a version mismatch), and the remote's :class:`BadInputError` /
    :class:`DeviceError`. ``say`` is told what an install (``target.install``) does.
    """
    from ctxscope.remote.install import Installer

    stop = stop or threading.Event()
    installer = Installer(target.host, say) if target.install else None
    channel = Channel(target.command(installer.command(target.python) if installer is not None else None))
    relay = Relay(job, target.host)
    started, stop_sent = time.monotonic(), None
    try:
        while True:
            if stop.is_set() and stop_sent is None:
                if relay.hello is None:
                    return () if job.kind == "matrix" else None  # cancelled before anything ran
                channel.send_message({"type": "stop"})
                stop_sent = time.monotonic()
            try:
                raw = channel.get(timeout=0.1)
            except queue.Empty:
                if relay.hello is None:
                    if time.monotonic() - started > hello_timeout:
                        raise RemoteError(with_stderr(f"{target.host}: no answer from ctxscope worker within "
                                                      f"{hello_timeout:.0f} s", channel.stderr())) from None
                    continue
                if channel.silent_for() > silence_s:
                    channel.close()
                    return (yield from _broken(relay, job, stop_sent, channel.stderr(), (
                        f"no word from {target.host} for {silence_s:.0f} s (a stalled network or a stopped remote); "
                        "the connection was cut")))
                if stop_sent is not None and time.monotonic() - stop_sent > CANCEL_GRACE_S:
                    channel.close()
                    return (yield from _broken(relay, job, stop_sent, "", (
                        f"{target.host} did not stop within {CANCEL_GRACE_S:.0f} s of the cancel; "
                        "the connection was cut")))
                continue
            if raw is None:
                break  # end of stream without an end line
            try:
                if installer is not None and relay.hello is None and installer.handle(raw, channel):
                    started = time.monotonic()  # installing took its time; torch is imported next
                    continue
                answer = relay.feed(raw)
            except WireError as exc:
                channel.close()
                line = f"{target.host} sent something that is not a ctxscope message on line {relay.lines} ({exc})"
                if relay.hello is None:
                    raise RemoteError(with_stderr(line, channel.stderr())) from None
                finished = relay.abandon("failed", with_stderr(f"{line}; the run stopped", channel.stderr()))
                if finished is not None:
                    yield finished
                    return tuple(relay.results) if job.kind == "matrix" else None
                raise RemoteError(with_stderr(line, channel.stderr())) from None
            if answer is None:
                continue
            kind, value = answer
            if kind == "hello":
                if on_hello is not None:
                    on_hello(value)
                # The heartbeat comes 4 times per silence limit: one lost or late is no stall.
                channel.send_message({"type": "job", "protocol": PROTOCOL, "ctxscope": ctxscope.__version__,
                                      "job": job_to_dict(job), "heartbeat_s": min(10.0, silence_s / 4)})
            elif kind == "event":
                yield value
            elif kind == "confirm":
                channel.send_message({"type": "answer",
                                      "run": bool(confirm(value)) if confirm is not None else False})
                channel.heard()  # the time the user took to answer was not the remote's silence
            elif kind == "end":
                result: JobResult = value  # checked by the relay against the job's kind
                return result
            else:
                what, text = value
                if what == "input":
                    raise BadInputError(f"{target.host}: {text}")
                if what == "device":
                    raise DeviceError(f"{target.host}: {text}")
                raise RemoteError(with_stderr(f"{target.host}: {text}", channel.stderr()))
        rc = channel.wait(timeout=10)
        text = channel.stderr()
        why = _why_ended(rc, text, target)
        if relay.hello is None:
            raise RemoteError(with_stderr(f"cannot run ctxscope on {target.host}: {why}", text))
        return (yield from _broken(relay, job, stop_sent, text, f"connection to {target.host} lost ({why})"))
    finally:
        channel.close()


def _broken(relay: Relay, job: Job, stop_sent: float | None, tail: str,
            line: str) -> Generator[JobEvent, None, JobResult]:
    """The job's stream ended before its ``end``: close the open run with every point
    that arrived and return what arrived; or, when no run was open (or the job is not
    a sweep) and nobody cancelled, raise :class:`RemoteLost` with ``line``."""
    kept = relay.open_points
    finished = relay.abandon("cancelled" if stop_sent is not None else "interrupted",
                             with_stderr(f"{line}; {kept} point(s) of the run kept", tail))
    if finished is not None:
        yield finished
    if stop_sent is not None:
        return tuple(relay.results) if job.kind == "matrix" else None
    if job.kind == "matrix" and finished is not None:
        return tuple(relay.results)
    runs = f"; {len(relay.results)} of {len(job.specs)} run(s) arrived" if job.kind == "matrix" else ""
    raise RemoteLost(with_stderr(f"{line} before the job ended{runs}", tail))
