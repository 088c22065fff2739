"""``ctxscope worker``: run one job read from stdin and write its events as JSON lines on
stdout — what ``ctxscope sweep --host`` and the app's *Run on* start over SSH.

The protocol (see :mod:`ctxscope.core.wire`): the worker writes a ``hello`` line, reads
one ``job`` line, then writes one line per event and a final ``end`` or ``error``. While
it runs, stdin may bring ``stop`` (cancel after the current model call) and ``answer``
lines; end of stdin (the connection dropped) stops the job too. While the job computes,
an ``alive`` line goes out whenever nothing else has for :data:`HEARTBEAT_S` seconds, so
the local side can tell a long model call from a stalled connection. Nothing but
protocol lines reaches stdout: file descriptor 1 is pointed at stderr for everything
else, C libraries included, so a stray print cannot corrupt the stream.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
import threading
import time
from typing import IO, Any

import ctxscope
from ctxscope.core.wire import MAX_LINE_BYTES, PROTOCOL, WireError, dumps, loads

EXIT = {"end": 0, "input": 2, "device": 3, "internal": 1, "refused": 2}
#: Seconds of silence after which the worker says it is alive, unless the job asks for
#: another period (a quarter of the local side's ``--remote-timeout``, 60 s by default).
HEARTBEAT_S = 10.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("worker", help="run one job from stdin, events as JSON lines on stdout (what --host starts)",
                       description="Run one ctxscope job described on stdin and write its events as JSON lines on "
                                   "stdout; started over SSH by `ctxscope sweep --host` and the app's Run on. Not "
                                   "meant to be typed by hand.")
    p.set_defaults(func=run)


class _Output:
    """The protocol stream: whole lines, one writer at a time (the confirm question is
    written from inside the job), and a note once the other side has gone."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream, self.lock, self.gone = stream, threading.Lock(), False
        self.last = time.monotonic()

    def write(self, line: str) -> None:
        if self.gone:
            return
        with self.lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
                self.last = time.monotonic()
            except (BrokenPipeError, OSError):
                self.gone = True  # the local side is gone: stop quietly, nobody is listening


class _Stdin:
    """Lines from file descriptor 0, read with ``os.read``. Not ``sys.stdin``: a thread
    blocked in its buffered reader holds the reader's lock, and at exit the interpreter
    aborts on that lock ("Fatal Python error: _enter_buffered_busy", SIGABRT) whenever
    the other side has not closed the connection yet. One reader for the job line and
    what follows, so nothing read ahead is lost between them."""

    def __init__(self, fd: int = 0) -> None:
        self.fd, self.pending, self.eof = fd, bytearray(), False

    def readline(self) -> bytes:
        """The next line (with its newline), at most ``MAX_LINE_BYTES + 1`` bytes (the
        caller refuses longer ones); ``b""`` at the end."""
        scanned = 0
        while (end := self.pending.find(b"\n", scanned)) < 0 and len(self.pending) <= MAX_LINE_BYTES \
                and not self.eof:
            scanned = len(self.pending)
            try:
                chunk = os.read(self.fd, 1 << 20)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            self.eof = not chunk
            self.pending += chunk
        cut = end + 1 if end >= 0 else min(len(self.pending), MAX_LINE_BYTES + 1)
        line = bytes(self.pending[:cut])
        del self.pending[:cut]
        return line


def _heartbeat(out: _Output, done: threading.Event, period: float) -> None:
    while not done.wait(min(1.0, period / 2)):
        if time.monotonic() - out.last >= period:
            out.write(dumps({"type": "alive"}))


def _protocol_stream() -> IO[str]:
    fd = os.dup(1)
    os.dup2(2, 1)  # everything else written to "stdout" — Python or C — lands on stderr
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8", buffering=1)


def _read_job(out: _Output, stdin: _Stdin) -> tuple[Any, int, float]:
    """(the job or ``None``, the exit code when there is none, the heartbeat period)."""
    from ctxscope.core.jobs.job import job_from_dict

    line = stdin.readline()
    if not line:
        return None, 0, HEARTBEAT_S  # the local side refused the handshake and went away
    try:
        message = loads(line)
        if message["type"] != "job":
            raise WireError(f"expected a job, got {message['type']!r}")
        theirs = message.get("ctxscope")
        if message.get("protocol") != PROTOCOL or theirs != ctxscope.__version__:
            out.write(dumps({"type": "error", "kind": "refused",
                             "message": f"this host runs ctxscope {ctxscope.__version__}, the other side "
                                        f"{theirs}: install the same version on both"}))
            return None, EXIT["refused"], HEARTBEAT_S
        return job_from_dict(message.get("job")), 0, _period(message.get("heartbeat_s"))
    except WireError as exc:
        out.write(dumps({"type": "error", "kind": "refused", "message": f"bad job: {exc}"}))
        return None, EXIT["refused"], HEARTBEAT_S


def _listen(stdin: _Stdin, stop: threading.Event, answers: queue.Queue[bool]) -> None:
    """stdin after the job: ``stop`` and ``answer`` lines; its end means the other side
    has gone, which stops the job as a cancel would."""
    while line := stdin.readline():
        try:
            message = loads(line)
        except WireError:
            continue  # nothing on stdin is ever executed; noise is ignored
        if message["type"] == "stop":
            stop.set()
        elif message["type"] == "answer":
            answers.put(message.get("run") is True)
    stop.set()
    answers.put(False)


def _period(asked: Any) -> float:
    """How often to say alive: as the local side asks (a quarter of its silence limit),
    else :data:`HEARTBEAT_S`; ``CTXSCOPE_HEARTBEAT_S`` wins (tests)."""
    value: Any = os.environ.get("CTXSCOPE_HEARTBEAT_S") or asked
    try:
        period = float(value) if value is not None and type(value) is not bool else HEARTBEAT_S
    except ValueError:
        return HEARTBEAT_S
    return min(max(period, 0.1), 60.0) if period == period else HEARTBEAT_S  # NaN: the default


def run(args: argparse.Namespace) -> int:
    from ctxscope.core.jobs.job import hello, job_lines

    out = _Output(_protocol_stream())
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="ctxscope worker: %(message)s")
    out.write(dumps(hello()))
    stdin = _Stdin()
    job, code, period = _read_job(out, stdin)
    if job is None:
        return code
    stop, done = threading.Event(), threading.Event()
    answers: queue.Queue[bool] = queue.Queue()
    threading.Thread(target=_listen, args=(stdin, stop, answers), daemon=True, name="ctxscope-stdin").start()
    threading.Thread(target=_heartbeat, args=(out, done, period), daemon=True, name="ctxscope-alive").start()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())  # an ssh -t Ctrl-C, a hang-up: cancel cleanly

    def confirm(check: Any) -> bool:
        from dataclasses import asdict

        out.write(dumps({"type": "confirm", "check": asdict(check)}))
        while not stop.is_set():
            try:
                return answers.get(timeout=0.2)
            except queue.Empty:
                continue
        return False

    last = "end"
    try:
        for line in job_lines(job, stop=stop, confirm=confirm):
            out.write(line)
            if out.gone:
                stop.set()  # keep draining: the job ends cancelled after the current model call
            if line.startswith('{"type":"error"'):
                last = loads(line).get("kind", "internal")
    finally:
        done.set()
    return EXIT.get(last, 1)
