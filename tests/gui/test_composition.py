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


def test_log_axes_read_plain_numbers_and_do_not_crowd(qtbot) -> None:
    import numpy as np

    from ctxscope.gui.plots import LogValueAxis

    axis = LogValueAxis("left")
    axis.setLogMode(False, True)
    [(_, values)] = axis.tickValues(np.log10(0.7), np.log10(900), size=400)
    assert [round(10 ** v, 6) for v in values] == [1, 2, 5, 10, 20, 50, 100, 200, 500]
    assert axis.tickStrings(values[:4], 1.0, 1.0) == ["1", "2", "5", "10"]
    [(_, short)] = axis.tickValues(np.log10(0.7), np.log10(900), size=90)
    assert 2 <= len(short) <= 3  # a short axis gets fewer labels, never 9·10², 8·10², …


def test_compare_axes_name_tokens_and_the_peak(window, qtbot, tmp_path) -> None:
    from ctxscope.core.serialize import write_run
    from tests.report.test_reports import make_run

    for rid, kw in (("a1", {}), ("b2", {"attn": "eager", "scale": 2.0})):
        write_run(make_run(rid, **kw), tmp_path / f"{rid}.json")
        window.open_run_file(str(tmp_path / f"{rid}.json"), into_compare=True)
    view = window.compare
    for plot in (view.latency, view.memory, view.ratio):
        assert plot.getAxis("bottom").labelString().endswith("(tokens)</span>"), plot.getAxis("bottom").labelString()
    assert "peak" in view.memory.getAxis("left").labelString()
    assert view.runs_list.wordWrap()
    assert all("\n" in view.table.item(r, 0).text() for r in range(view.table.rowCount())
               if "ms" in view.table.item(r, 0).text())
