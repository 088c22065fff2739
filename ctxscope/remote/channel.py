"""The ssh process under a remote job: its stdout as lines on a queue (each arrival
timed, so silence can be measured), its last stderr lines kept for error messages,
writes to its stdin, and an end that always ends it."""

from __future__ import annotations

import collections
import queue
import subprocess
import threading
import time
from typing import Any

from ctxscope.core.wire import MAX_LINE_BYTES, dumps
from ctxscope.remote.sanitize import clean_text

_STDERR_LINES = 40


class Channel:
    """``argv`` (an ssh command line) started in its own session, so a terminal's
    Ctrl-C is ours to forward, not ssh's to take."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self.last_heard = time.monotonic()  # when the last line arrived (or the channel opened)
        threading.Thread(target=self._read_stdout, daemon=True, name="ctxscope-ssh-out").start()
        threading.Thread(target=self._read_stderr, daemon=True, name="ctxscope-ssh-err").start()

    def get(self, timeout: float) -> bytes | None:
        """The next line, ``None`` at the end of the stream; :class:`queue.Empty` after
        ``timeout`` seconds without one."""
        return self.lines.get(timeout=timeout)

    def silent_for(self) -> float:
        """Seconds since the remote last sent anything."""
        return time.monotonic() - self.last_heard

    def heard(self) -> None:
        """Count silence from now (after a wait that was ours, not the remote's)."""
        self.last_heard = time.monotonic()

    def send(self, data: bytes) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the stream's end says what happened

    def send_message(self, message: dict[str, Any]) -> None:
        self.send((dumps(message) + "\n").encode("utf-8"))

    def stderr(self) -> str:
        """The remote's last stderr lines (control characters stripped)."""
        time.sleep(0.05)  # let the stderr reader catch the last lines
        return "\n".join(self.tail)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                raw = self.proc.stdout.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    break
                self.last_heard = time.monotonic()
                self.lines.put(raw)
        except (OSError, ValueError):
            pass
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        try:
            for raw in self.proc.stderr:
                # Bounded and without escape sequences: these lines are printed as they are.
                self.tail.append(clean_text(raw.decode("utf-8", "replace").rstrip(), 500))
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        """End ssh: closing its stdin tells the worker to stop; then terminate, then kill."""
        proc = self.proc
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
