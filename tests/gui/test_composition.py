"""The window's parts on their own: the view-update scheduler, and the history read
off the UI thread."""

from __future__ import annotations

import threading

from ctxscope.gui.scheduler import ViewScheduler


def test_the_scheduler_applies_one_update_per_tick(qtbot) -> None:
    scheduler = ViewScheduler(interval_ms=5)
    done: list[int] = []
    for i in range(3):
        scheduler.push(lambda i=i: done.append(i))
    assert len(scheduler) == 3 and scheduler.active and done == []
    qtbot.waitUntil(lambda: len(done) >= 1, timeout=2000)
    assert done[0] == 0 and len(scheduler) == 3 - len(done)  # one at a time, in order
    qtbot.waitUntil(lambda: done == [0, 1, 2], timeout=2000)
    assert not scheduler.active  # idle when drained
    scheduler.push(lambda: done.append(3))
    scheduler.push(lambda: done.append(4))
    scheduler.flush()
    assert done == [0, 1, 2, 3, 4] and not scheduler.active
    scheduler.push(lambda: done.append(5))
    scheduler.clear()
    qtbot.wait(30)
    assert done == [0, 1, 2, 3, 4] and len(scheduler) == 0


def test_history_reads_leave_the_ui_thread(window, qtbot, monkeypatch) -> None:
    from ctxscope.store.db import RunStore

    threads: list[str] = []
    original = RunStore.list_runs

    def list_runs(self):
        threads.append(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(RunStore, "list_runs", list_runs)
    window.refresh_history()
    qtbot.waitUntil(lambda: not window.history_controller.busy, timeout=10_000)
    assert threads and threading.main_thread().name not in threads
