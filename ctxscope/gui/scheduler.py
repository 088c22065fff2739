"""View updates applied one at a time, a timer slice apart.

Repainting every plot in one turn took ~75 ms at 1440×900 in Qt's software rasteriser,
long enough to stall input; one view stays near 10–20 ms. So updates are queued and a
16 ms timer applies one per tick, letting input and other timers in between (a 0 ms
timer would starve them)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal


class ViewScheduler(QObject):
    """A queue of view updates drained by a timer, one update per tick; ``drained``
    once the queue is empty again."""

    drained = Signal()

    def __init__(self, parent: QObject | None = None, interval_ms: int = 16) -> None:
        super().__init__(parent)
        self._pending: deque[Callable[[], None]] = deque()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timer_timeout)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def push(self, update: Callable[[], None]) -> None:
        """Queue ``update``; the timer starts if it was idle."""
        self._pending.append(update)
        if not self._timer.isActive():
            self._timer.start()

    def push_front(self, update: Callable[[], None]) -> None:
        """Queue ``update`` to run next: the rest of an update split over two ticks."""
        self._pending.appendleft(update)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Apply every queued update now (a finished run, a test)."""
        while self._pending:
            self._pending.popleft()()
        self._timer.stop()
        self.drained.emit()

    def clear(self) -> None:
        """Drop what is queued (the views are being cleared anyway)."""
        self._pending.clear()
        self._timer.stop()
        self.drained.emit()

    def _on_timer_timeout(self) -> None:
        if self._pending:
            self._pending.popleft()()
        if not self._pending:
            self._timer.stop()
            self.drained.emit()
