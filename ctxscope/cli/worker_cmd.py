"""``ctxscope worker``: run one job read from stdin and write its events as JSON lines on
stdout — what ``ctxscope sweep --host`` and the app's *Run on* start over SSH.

The protocol (see :mod:`ctxscope.core.wire`): the worker writes a ``hello`` line, reads
one ``job`` line, then writes one line per event and a final ``end`` or ``error``. While
it runs, stdin may bring ``stop`` (cancel after the current model call) and ``answer``
lines; end of stdin (the connection dropped) stops the job too. Nothing but protocol
lines reaches stdout: file descriptor 1 is pointed at stderr for everything else, C
libraries included, so a stray print cannot corrupt the stream.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
import threading
from typing import IO, Any

import ctxscope
from ctxscope.core.wire import MAX_LINE_BYTES, PROTOCOL, WireError, dumps, loads

EXIT = {"end": 0, "input": 2, "device": 3, "internal": 1, "refused": 2}


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

    def write(self, line: str) -> None:
        if self.gone:
            return
        with self.lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (BrokenPipeError, OSError):
                self.gone = True  # the local side is gone: stop quietly, nobody is listening


def _protocol_stream() -> IO[str]:
    fd = os.dup(1)
    os.dup2(2, 1)  # everything else written to "stdout" — Python or C — lands on stderr
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8", buffering=1)


def _read_job(out: _Output) -> tuple[Any, int]:
    from ctxscope.core.jobs import job_from_dict

    line = sys.stdin.buffer.readline(MAX_LINE_BYTES + 1)
    if not line:
        return None, 0  # the local side refused the handshake and went away
    try:
        message = loads(line)
        if message["type"] != "job":
            raise WireError(f"expected a job, got {message['type']!r}")
        theirs = message.get("ctxscope")
        if message.get("protocol") != PROTOCOL or theirs != ctxscope.__version__:
            out.write(dumps({"type": "error", "kind": "refused",
                             "message": f"this host runs ctxscope {ctxscope.__version__}, the other side "
                                        f"{theirs}: install the same version on both"}))
            return None, EXIT["refused"]
        return job_from_dict(message.get("job")), 0
    except WireError as exc:
        out.write(dumps({"type": "error", "kind": "refused", "message": f"bad job: {exc}"}))
        return None, EXIT["refused"]


def _listen(stop: threading.Event, answers: queue.Queue[bool]) -> None:
    """stdin after the job: ``stop`` and ``answer`` lines; its end means the other side
    has gone, which stops the job as a cancel would."""
    try:
        for line in sys.stdin.buffer:
            try:
                message = loads(line)
            except WireError:
                continue  # nothing on stdin is ever executed; noise is ignored
            if message["type"] == "stop":
                stop.set()
            elif message["type"] == "answer":
                answers.put(message.get("run") is True)
    except (OSError, ValueError):
        pass
    stop.set()
    answers.put(False)


def run(args: argparse.Namespace) -> int:
    from ctxscope.core.jobs import hello, job_lines

    out = _Output(_protocol_stream())
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="ctxscope worker: %(message)s")
    out.write(dumps(hello()))
    job, code = _read_job(out)
    if job is None:
        return code
    stop = threading.Event()
    answers: queue.Queue[bool] = queue.Queue()
    threading.Thread(target=_listen, args=(stop, answers), daemon=True, name="ctxscope-stdin").start()
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
    lines = job_lines(job, stop=stop, confirm=confirm)
    for line in lines:
        out.write(line)
        if out.gone:
            stop.set()  # keep draining: the job ends cancelled after the current model call
        if line.startswith('{"type":"error"'):
            last = loads(line).get("kind", "internal")
    return EXIT.get(last, 1)
