"""The measuring thread waits for the views between points.

A sweep measured in this process shares the GIL with the UI thread. When a point's view
updates (a plot repaint is 5-25 ms of Python and Qt on a 2-core CPU) ran while the next
point was being measured, both lost: the updates took 2-3x as long (the heartbeat's
longest gaps, 60-100 ms) and the measured passes lost GIL time to the UI. So after each
point (and a sweep's start, whose views are cleared; an attention capture, a quality
point), the measuring thread waits until the UI thread has applied the updates that point
queued, for :data:`PACE_TIMEOUT_S` at most — a stuck or hidden UI never holds a sweep up
for longer — and then measures the next.
Only a job run in this process is paced: over SSH or on a Ray cluster the measurement
does not share this process's GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TypeVar

from ctxscope.core.events import AttentionResult, PointFailed, PointResult, SweepStarted
from ctxscope.core.quality.records import QualityPoint

#: The longest a point waits for the views (they take ~0.1 s: five ticks 16 ms apart).
PACE_TIMEOUT_S = 2.0
#: A heatmap or a needle grid is drawn when its event is handled (not through the Live
#: tab's queue): paced, it is drawn before the next point is measured, not beside it.
PACED = (PointResult, PointFailed, SweepStarted, AttentionResult, QualityPoint)

_Event = TypeVar("_Event")
_Result = TypeVar("_Result")


class ViewPacer:
    """Counts the paced events the worker sent and those whose view updates the UI
    thread has applied; :meth:`paced` makes the worker wait for the second to catch up."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._sent = 0  # worker thread: paced events passed on
        self._handled = 0  # UI thread: paced events handed to the views
        self._applied = 0  # UI thread: paced events whose updates are all applied
        self.waits = 0  # how many waits ran into the timeout (for tests and the curious)

    def reset(self) -> None:
        """A new job: nothing sent, nothing owed."""
        with self._cv:
            self._sent = self._handled = self._applied = 0

    def paced(self, events: Generator[_Event, None, _Result],
              stop: threading.Event) -> Generator[_Event, None, _Result]:
        """``events`` passed on; after each paced one, wait (in the worker) until the UI
        has applied its updates, ``stop`` is set, or the timeout passes."""
        try:
            while True:
                try:
                    event = next(events)
                except StopIteration as done:
                    result: _Result = done.value
                    return result
                yield event  # back here once the worker has emitted it to the UI thread
                if isinstance(event, PACED):
                    with self._cv:
                        self._sent += 1
                        seq = self._sent
                        if not self._cv.wait_for(lambda: self._applied >= seq or stop.is_set(),
                                                 timeout=PACE_TIMEOUT_S):
                            self.waits += 1
        finally:
            events.close()

    def handled(self, event: object, *, views_idle: bool) -> None:
        """UI thread: ``event`` was handed to the views; ``views_idle``: they queued
        nothing (the point is not shown), so it is applied already."""
        if isinstance(event, PACED):
            with self._cv:
                self._handled += 1
            if views_idle:
                self.applied()

    def wake(self) -> None:
        """Any thread: a waiting worker re-checks its stop event now (a cancel)."""
        with self._cv:
            self._cv.notify_all()

    def applied(self) -> None:
        """UI thread: every queued view update has run (the scheduler drained)."""
        with self._cv:
            self._applied = self._handled
            self._cv.notify_all()
