"""The measuring thread waits for the views between points (gui/pacing.py): a point is
measured only once the UI has applied the previous point's updates — cancel and a stuck
UI (the timeout) never hold it up for longer."""

from __future__ import annotations

import queue
import threading

import pytest

from ctxscope.core.events import AttentionResult, PointFailed, PointResult, Progress, SweepStarted
from ctxscope.core.quality.records import QualityPoint
from ctxscope.gui import pacing
from ctxscope.gui.pacing import ViewPacer
from tests.gui.conftest import set_model
from tests.report.test_reports import make_run

WAIT_S = 60.0  # generous: every wait below ends on an event, never on the clock


def _events(produced: list[int]):
    """A stand-in sweep: a progress line and a point per length, noting each point's start."""
    run = make_run("pace", lengths=(64, 128, 256))
    for k, point in enumerate(p for p in run.points if p.mode == "prefill"):
        produced.append(k)  # "measuring" point k starts here
        yield Progress(k, 3, "prefill", point.length, 0.0, None)
        yield PointResult(point)
    return "done"


def _start(pacer: ViewPacer, stop: threading.Event, produced: list[int]) -> tuple[queue.Queue, threading.Thread]:
    out: queue.Queue = queue.Queue()

    def work() -> None:
        gen = pacer.paced(_events(produced), stop)
        try:
            while True:
                out.put(next(gen))
        except StopIteration as done:
            out.put(("end", done.value))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return out, thread


def _sent(pacer: ViewPacer, n: int) -> None:
    """Wait until the worker has sent ``n`` paced events (it then waits or goes on)."""
    while True:
        with pacer._cv:
            if pacer._sent >= n:
                return
            pacer._cv.wait(0.05)


def test_the_next_point_waits_until_the_views_applied_the_last(monkeypatch) -> None:
    monkeypatch.setattr(pacing, "PACE_TIMEOUT_S", WAIT_S)
    pacer, stop, produced = ViewPacer(), threading.Event(), []
    out, thread = _start(pacer, stop, produced)
    assert isinstance(out.get(timeout=WAIT_S), Progress)  # not paced: straight on
    first = out.get(timeout=WAIT_S)
    assert isinstance(first, PointResult)
    _sent(pacer, 1)
    assert produced == [0]  # the worker waits: point 1 not started
    pacer.handled(first, views_idle=False)  # handed to the views, their updates queued …
    assert produced == [0] and out.empty()
    pacer.applied()  # … and applied: the worker measures the next
    assert isinstance(out.get(timeout=WAIT_S), Progress) and produced == [0, 1]
    second = out.get(timeout=WAIT_S)
    _sent(pacer, 2)
    assert produced == [0, 1]
    pacer.handled(second, views_idle=True)  # nothing queued (the run is not shown): applied at once
    out.get(timeout=WAIT_S)
    out.get(timeout=WAIT_S)
    _sent(pacer, 3)
    stop.set()  # a cancel goes on without the views …
    pacer.wake()
    assert out.get(timeout=WAIT_S) == ("end", "done")
    thread.join(WAIT_S)
    assert produced == [0, 1, 2] and pacer.waits == 0  # … and no wait ran into the timeout


def test_a_stuck_ui_holds_a_point_up_for_the_timeout_only(monkeypatch) -> None:
    monkeypatch.setattr(pacing, "PACE_TIMEOUT_S", 0.01)
    pacer, produced = ViewPacer(), []
    out, thread = _start(pacer, threading.Event(), produced)
    thread.join(WAIT_S)  # nobody ever applies anything
    items = [out.get_nowait() for _ in range(out.qsize())]
    assert items[-1] == ("end", "done") and produced == [0, 1, 2] and pacer.waits == 3


@pytest.mark.slow  # a real sweep through the window
def test_each_point_is_measured_after_the_views_caught_up(window, qtbot, tiny_config_files, monkeypatch) -> None:
    monkeypatch.setattr(pacing, "PACE_TIMEOUT_S", WAIT_S)  # a busy machine's slow ticks are no timeout
    set_model(window, str(tiny_config_files["llama"]), "16,32,64")
    queued_at_progress: list[int] = []
    window.runner.progressChanged.connect(lambda _: queued_at_progress.append(len(window.live.scheduler)))
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=60_000):
        window.sweep_panel.run_button.click()
    # The progress line before each point comes once the previous point's (and the sweep
    # start's) updates have all run: nothing queued when a point is measured.
    assert len(queued_at_progress) == 6 and set(queued_at_progress) == {0}
    assert window.runner.pacer.waits == 0


@pytest.mark.parametrize("kind", [AttentionResult, QualityPoint, PointFailed, SweepStarted])
def test_captures_and_quality_points_are_paced_too(kind, monkeypatch) -> None:
    # A heatmap or a needle grid is drawn as its event is handled: before the next point.
    monkeypatch.setattr(pacing, "PACE_TIMEOUT_S", WAIT_S)
    pacer, produced, out = ViewPacer(), [], queue.Queue()
    event = object.__new__(kind)  # only its type matters here

    def events():
        produced.append("first")
        yield event
        produced.append("second")
        return None

    def work() -> None:
        for item in pacer.paced(events(), threading.Event()):
            out.put(item)
        out.put("end")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert out.get(timeout=WAIT_S) is event
    _sent(pacer, 1)
    assert produced == ["first"]
    pacer.handled(event, views_idle=True)
    assert out.get(timeout=WAIT_S) == "end" and produced == ["first", "second"]
    thread.join(WAIT_S)
