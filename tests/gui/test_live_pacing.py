"""The Live tab keeps the UI thread free while a sweep fills it (issue 27 item 15): a new
sweep clears one view per scheduler tick, a new curve's items get a tick of their own,
and a view is refitted only when a point falls outside the room it left — snugly once the
run is finished — while a view the user zoomed is left alone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ctxscope.core.results import Point
from ctxscope.core.stats import LatencyStats
from ctxscope.gui.run_presenter import RunPresenter
from tests.report.test_reports import make_run


def _point(mode: str, length: int, ms: float) -> Point:
    run = make_run("p", lengths=(1024,))
    base = next(p for p in run.points if p.mode == "prefill")
    return replace(base, mode=mode, length=length, latency_ms=LatencyStats.from_samples([ms * 0.99, ms, ms * 1.01]))


def _drain_one_tick(live) -> None:
    live.scheduler._on_timer_timeout()


def _presenter(window) -> RunPresenter:
    return next(v for v in vars(window).values() if isinstance(v, RunPresenter))


def test_a_new_sweep_clears_a_view_per_tick_and_names_the_run(window, qtbot) -> None:
    live, presenter = window.live, _presenter(window)
    first = make_run("r1", lengths=(64, 128))
    presenter._on_runner_sweep_started(first.header)
    for p in first.points:
        presenter._on_runner_point(p)
    live.finish_run(first, None)
    assert "r1 complete" in live.hint.text()  # said at once; the views follow, a tick each
    assert len(live.scheduler) > 5  # the points' updates, then a snug fit per plot, columns, fits
    live.scheduler.flush()
    assert live.latency.series
    second = replace(first, header=replace(first.header, id="r2"))
    presenter._on_runner_sweep_started(second.header)
    # Nothing cleared yet in this turn: a tick per view, then the run joins.
    assert live.latency.series and len(live.scheduler) == 10  # 3 clears, legend, 3 x axes, table, breakdown, join
    assert live.hint.isVisibleTo(live) and live.hint.text().startswith("Measuring preset:gpt2")
    _drain_one_tick(live)
    assert not live.latency.series and live.memory.series  # one view per tick
    presenter._on_runner_point(second.points[0])  # a point arriving meanwhile queues behind
    while len(live.scheduler):
        _drain_one_tick(live)
    assert set(live.shown) == {"r2"} and [k[0] for k in live.latency.series] == ["r2"]


def test_a_new_curves_items_come_a_tick_before_its_data(window) -> None:
    live = window.live
    run = make_run("c1", lengths=(64,))
    live.start_run(run.header)
    live.scheduler.flush()
    live.add_point("c1", _point("prefill", 64, 5.0))
    _drain_one_tick(live)  # the latency plot's new curve: its items only
    series = live.latency.series[("c1", "prefill")]
    assert series.items and not series.points
    _drain_one_tick(live)
    assert list(series.points) == [64]


def test_the_view_is_refitted_only_when_a_point_falls_outside_it(window) -> None:
    live = window.live
    run = make_run("f1", lengths=(64,))
    live.start_run(run.header)
    live.scheduler.flush()
    plot, vb = live.latency, live.latency.getPlotItem().vb
    for length, ms in ((64, 4.0), (128, 8.0)):
        live.add_point("f1", _point("prefill", length, ms))
        live.scheduler.flush()
    fitted = vb.viewRange()
    live.add_point("f1", _point("decode", 128, 6.0))  # inside the room left
    live.scheduler.flush()
    assert vb.viewRange() == fitted
    live.add_point("f1", _point("prefill", 4096, 400.0))  # far outside
    live.scheduler.flush()
    grown = vb.viewRange()
    assert grown[0][1] > fitted[0][1] and grown[1][1] > 0.4  # seconds
    plot.fit(snug=True)
    snug = vb.viewRange()
    assert 0.4 <= snug[1][1] < grown[1][1]  # the room is gone, the data still inside
    vb.sigRangeChangedManually.emit([True, True])  # the user zooms: their view is kept
    vb.setRange(yRange=(0, 0.1), padding=0)
    live.add_point("f1", _point("prefill", 8192, 900.0))
    live.scheduler.flush()
    assert vb.viewRange()[1][1] <= 0.1 + 1e-9
    plot.getPlotItem().autoBtn.clicked.emit(plot.getPlotItem().autoBtn)  # the auto button fits again
    assert vb.viewRange()[1][1] >= 0.9


def test_a_devices_capacity_line_is_the_top_of_the_memory_view(window) -> None:
    """On a GPU the capacity line is in the memory view: no room is left above it."""
    live = window.live
    run = make_run("g1", lengths=(1024,))
    live.start_run(run.header)  # a CUDA run: its 80 GiB are in view
    live.scheduler.flush()
    for p in run.points:
        live.add_point("g1", p)
    live.scheduler.flush()
    low, high = live.memory.getPlotItem().vb.viewRange()[1]
    assert 80 <= high <= 80 * 1.1 and low <= 0


def test_the_memory_plot_builds_only_the_stack_it_shows(window) -> None:
    live = window.live
    run = make_run("m1", lengths=(64, 128))
    live.show_run(run, None)
    memory = live.memory
    shown, hidden = memory.series[("m1", "prefill")], memory.series[("m1", "decode")]
    assert shown.items and not hidden.items and list(hidden.points) == [64, 128]
    assert memory.shows("m1", "prefill") and not memory.shows("m1", "decode")
    live.memory_mode.setCurrentText("decode")  # built now, from the points it kept
    assert hidden.items and memory.shows("m1", "decode") and not memory.shows("m1", "prefill")
    top = hidden.items[3].yData
    expected = [memory._y(hidden.points[n]) for n in (64, 128)]
    assert list(top) == pytest.approx(expected)


def test_the_x_axis_spans_the_planned_lengths_before_the_first_point(window) -> None:
    live = window.live
    run = make_run("x1", lengths=(256, 1024, 8192))
    live.start_run(run.header)
    live.scheduler.flush()
    (x0, x1), _ = live.latency.getPlotItem().vb.viewRange()
    assert 10 ** x0 <= 256 < 8192 <= 10 ** x1 and 10 ** x0 > 200 and 10 ** x1 < 11_000
    live.add_point("x1", _point("prefill", 256, 5.0))
    live.scheduler.flush()
    assert live.latency.getPlotItem().vb.viewRange()[0] == [x0, x1]  # the first point changes y only
    live.add_point("x1", _point("prefill", 8192, 50.0))  # the last planned length: its symbol's
    live.scheduler.flush()  # pixels reach past it, which is not past the plan (no octave added)
    assert live.latency.getPlotItem().vb.viewRange()[0] == [x0, x1]
    live.add_point("x1", _point("prefill", 16384, 90.0))  # past the plan (a search): room beyond it
    live.scheduler.flush()
    assert 10 ** live.latency.getPlotItem().vb.viewRange()[0][1] > 16384 * 1.5


def test_a_snug_view_leaves_the_legend_a_free_corner(window) -> None:
    live = window.live
    run = make_run("g1", lengths=(64, 1024))
    live.start_run(run.header)
    live.scheduler.flush()
    # Flat curves along the top and the bottom: a point in every corner of a snug view.
    for mode, ms in (("prefill", 10.0), ("decode", 1.0)):
        for length in (64, 128, 256, 512, 1024):
            live.add_point("g1", _point(mode, length, ms))
    live.scheduler.flush()
    plot = live.latency
    plot.fit(snug=True)
    (_, _), (y0, y1) = plot.getPlotItem().vb.viewRange()
    assert plot.place_legend() == 0  # the top was raised by the legend's height …
    assert 0.0105 < y1 < 0.02  # … not much more


def test_a_sweep_finishing_behind_an_opened_run_leaves_the_views_alone(window) -> None:
    live = window.live
    sweep = make_run("s1", lengths=(64, 128))
    live.start_run(sweep.header)
    live.scheduler.flush()
    opened = make_run("h1", lengths=(256, 512))
    live.show_run(opened, None)  # from the history, while the sweep runs
    live.finish_run(sweep, None)
    live.scheduler.flush()
    assert set(live.finished) == {"h1"} and set(live.shown) == {"h1"}
