"""Which process recorded a run: its id *and* its start time, since process ids are
reused (a killed sweep's id may belong to another program a day later)."""

from __future__ import annotations

import os

# Start times count clock ticks (10 ms) from boot, so two reads of one process agree
# to the tick, while two processes started in the same second differ by more. (A step of
# the wall clock shifts psutil's boot time; rare, and it only makes a live run read as
# interrupted until it records its final status.)
_SAME_START_S = 0.05


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
        created: float = proc.create_time()  # psutil ships no types
        return abs(created - started) < _SAME_START_S
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, OSError):
        # Our own processes can always be inspected: one we cannot is someone else's,
        # unless only the id was recorded, which cannot tell.
        return started is None
