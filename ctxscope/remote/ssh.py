"""Run a job on another machine over the user's own OpenSSH: ``ssh HOST ctxscope worker``.

ctxscope stores no secret and never prompts: ssh runs with ``BatchMode=yes``, so keys,
the agent, ``~/.ssh/config`` (aliases, ports, jump hosts) decide, exactly as for a
plain ``ssh HOST``. The remote's stdout carries only protocol lines, validated as they
arrive; its stderr is kept and shown whenever something fails.
"""

from __future__ import annotations

import collections
import os
import queue
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import ctxscope
from ctxscope.core.errors import BadInputError, DeviceError
from ctxscope.core.jobs import Job, job_to_dict
from ctxscope.core.wire import MAX_LINE_BYTES, PROTOCOL, WireError, dumps
from ctxscope.remote.relay import Hello, Relay, RemoteError, with_stderr

#: How long the remote may take to answer (ssh connect + importing torch there).
HELLO_TIMEOUT_S = 180.0
#: After a cancel, how long the remote may take to end its run before the connection is cut.
CANCEL_GRACE_S = 120.0
_STDERR_LINES = 40


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
    ``ssh``), e.g. ``ssh -F ./ssh_config``."""

    host: str
    python: str | None = None
    ssh: tuple[str, ...] = ()

    def command(self) -> list[str]:
        client = list(self.ssh) or shlex.split(os.environ.get("CTXSCOPE_SSH", "ssh"))
        worker = [self.python, "-m", "ctxscope", "worker"] if self.python else ["ctxscope", "worker"]
        # "--" before the host: a destination can never be read as an ssh option.
        return [*client, "-T", "-o", "BatchMode=yes", "--", check_host(self.host), shlex.join(worker)]


def _why_ended(rc: int | None, tail: str, target: RemoteTarget) -> str:
    last = next((row.strip() for row in reversed(tail.splitlines()) if row.strip()), "")
    if rc == 127 or "command not found" in last or "No such file" in last:
        where = f"{target.python} is not there" if target.python else "ctxscope is not on the PATH of a " \
                                                                       "non-interactive shell there"
        return f"{where} (install ctxscope on {target.host}, or pass --remote-python PATH)"
    if "No module named ctxscope" in tail:
        return f"{target.python} has no ctxscope installed"
    if rc is not None and rc < 0:
        return f"ssh was killed by signal {-rc}"
    if last:
        return last[:200]
    return f"ssh exited with status {rc}"


def run_remote(target: RemoteTarget, job: Job, *, stop: threading.Event | None = None,
               confirm: Callable[[Any], bool] | None = None, on_hello: Callable[[Hello], None] | None = None,
               hello_timeout: float = HELLO_TIMEOUT_S) -> Generator[Any, None, Any]:
    """Run ``job`` on ``target``, yielding the events the remote measures as they arrive.

    Returns what the job returns (the matrix's runs, a max-context answer, a model
    summary). A stream that breaks off — the connection dropped, the remote died, a
    line that is not a ctxscope message — ends the open run with every point that
    arrived (``interrupted``, or ``failed`` for garbage) and one line naming the host
    and why. Raises :class:`RemoteError` when nothing ran (unreachable, no ctxscope,
    a version mismatch), and the remote's :class:`BadInputError` / :class:`DeviceError`.
    """
    stop = stop or threading.Event()
    proc = subprocess.Popen(target.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # a terminal's Ctrl-C is ours to forward, not ssh's to take
    lines: queue.Queue[bytes | None] = queue.Queue()
    tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
    threading.Thread(target=_read_stdout, args=(proc, lines), daemon=True, name="ctxscope-ssh-out").start()
    threading.Thread(target=_read_stderr, args=(proc, tail), daemon=True, name="ctxscope-ssh-err").start()
    relay = Relay(job, target.host)
    started, stop_sent = time.monotonic(), None

    def send(message: dict[str, Any]) -> None:
        try:
            assert proc.stdin is not None
            proc.stdin.write((dumps(message) + "\n").encode("utf-8"))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the stream's end says what happened

    def stderr() -> str:
        time.sleep(0.05)  # let the stderr reader catch the last lines
        return "\n".join(tail)

    try:
        while True:
            if stop.is_set() and stop_sent is None:
                if relay.hello is None:
                    return () if job.kind == "matrix" else None  # cancelled before anything ran
                send({"type": "stop"})
                stop_sent = time.monotonic()
            try:
                raw = lines.get(timeout=0.1)
            except queue.Empty:
                if relay.hello is None and time.monotonic() - started > hello_timeout:
                    raise RemoteError(with_stderr(f"{target.host}: no answer from ctxscope worker within "
                                                  f"{hello_timeout:.0f} s", stderr())) from None
                if stop_sent is not None and time.monotonic() - stop_sent > CANCEL_GRACE_S:
                    finished = relay.abandon("cancelled", f"{target.host} did not stop within {CANCEL_GRACE_S:.0f} s "
                                                          "of the cancel; the connection was cut")
                    if finished is not None:
                        yield finished
                    return tuple(relay.results) if job.kind == "matrix" else None
                continue
            if raw is None:
                break  # end of stream without an end line
            try:
                answer = relay.feed(raw)
            except WireError as exc:
                _stop(proc)
                line = f"{target.host} sent something that is not a ctxscope message on line {relay.lines} ({exc})"
                if relay.hello is None:
                    raise RemoteError(with_stderr(line, stderr())) from None
                finished = relay.abandon("failed", with_stderr(f"{line}; the run stopped", stderr()))
                if finished is not None:
                    yield finished
                    return tuple(relay.results) if job.kind == "matrix" else None
                raise RemoteError(with_stderr(line, stderr())) from None
            if answer is None:
                continue
            kind, value = answer
            if kind == "hello":
                if on_hello is not None:
                    on_hello(value)
                send({"type": "job", "protocol": PROTOCOL, "ctxscope": ctxscope.__version__, "job": job_to_dict(job)})
            elif kind == "event":
                yield value
            elif kind == "confirm":
                send({"type": "answer", "run": bool(confirm(value)) if confirm is not None else False})
            elif kind == "end":
                return value
            else:
                what, text = value
                if what == "input":
                    raise BadInputError(f"{target.host}: {text}")
                if what == "device":
                    raise DeviceError(f"{target.host}: {text}")
                raise RemoteError(with_stderr(f"{target.host}: {text}", stderr()))
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        text = stderr()
        why = _why_ended(rc, text, target)
        if relay.hello is None:
            raise RemoteError(with_stderr(f"cannot run ctxscope on {target.host}: {why}", text))
        status = "cancelled" if stop_sent is not None else "interrupted"
        finished = relay.abandon(status, with_stderr(f"connection to {target.host} lost ({why}); "
                                                     f"{relay.open_points} point(s) of the run kept", text))
        if finished is not None:
            yield finished
        if job.kind != "matrix":
            raise RemoteError(with_stderr(f"connection to {target.host} lost ({why})", text))
        return tuple(relay.results)
    finally:
        _stop(proc)


def _read_stdout(proc: subprocess.Popen[bytes], lines: queue.Queue[bytes | None]) -> None:
    assert proc.stdout is not None
    try:
        while True:
            raw = proc.stdout.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            lines.put(raw)
    except (OSError, ValueError):
        pass
    lines.put(None)


def _read_stderr(proc: subprocess.Popen[bytes], tail: collections.deque[str]) -> None:
    assert proc.stderr is not None
    try:
        for raw in proc.stderr:
            tail.append(raw.decode("utf-8", "replace").rstrip()[:500])
    except (OSError, ValueError):
        pass


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End ssh: closing its stdin tells the worker to stop; then terminate, then kill."""
    if proc.poll() is None:
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
