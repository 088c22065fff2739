"""A worker that follows a script instead of the protocol: the wire-fault tests' remote.

Run as ``python fake_worker.py SCRIPT.json`` (standard library only, so it starts at
once). The script is a list of steps:

- ``["send", LINE]``: write LINE and a newline to stdout;
- ``["stderr", TEXT]``: write TEXT to stderr;
- ``["read"]``: read one line from stdin (the job);
- ``["wait", SECONDS]``: wait, ending at once (exit 0) if stdin closes, so a test that
  gives up on this worker never leaves it behind;
- ``["kill"]``: SIGKILL itself; ``["exit", CODE]``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as fh:
        steps = json.load(fh)
    for step in steps:
        kind = step[0]
        if kind == "send":
            sys.stdout.write(step[1] + "\n")
            sys.stdout.flush()
        elif kind == "stderr":
            sys.stderr.write(step[1] + "\n")
            sys.stderr.flush()
        elif kind == "read":
            sys.stdin.buffer.readline()
        elif kind == "wait":
            deadline = time.monotonic() + step[1]
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([0], [], [], left)
                if ready and not os.read(0, 65536):
                    return 0  # the other side has gone
        elif kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "exit":
            return int(step[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
