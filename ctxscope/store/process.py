"""Which process recorded a run: its id *and* its start time, since process ids are
reused (a killed sweep's id may belong to another program a day later)."""

from __future__ import annotations

import os

# Start times are whole clock ticks since boot; two reads of one process agree exactly,
# a process that reused the id started (much) later.
_SAME_START_S = 1.0


def this_process() -> tuple[int, float | None]:
    """``(pid, start time)`` of the current process."""
    return os.getpid(), _started(os.getpid())


def _started(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def process_alive(pid: int | None, started: float | None) -> bool:
    """Whether the process that recorded a run still runs. ``started`` is ``None`` for
    rows written before start times were recorded: then the id alone decides."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False  # dead, only not yet collected by its parent
        if started is None:
            return True
        return abs(proc.create_time() - started) < _SAME_START_S
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, OSError):
        # Our own processes can always be inspected: one we cannot is someone else's,
        # unless only the id was recorded, which cannot tell.
        return started is None
