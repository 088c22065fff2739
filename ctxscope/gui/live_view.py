"""The Live tab: latency, memory and throughput plots and the results table for the
runs shown (one sweep as it runs, or stored runs overlaid), with the analytic
predictions and the latency fit. A view: fed headers and points, it changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ctxscope.core.results import Point, RunHeader, RunResult
from ctxscope.core.units import plural
from ctxscope.gui.breakdown_plot import BreakdownPlot
from ctxscope.gui.memory_plot import MemoryPlot
from ctxscope.gui.plots import LatencyPlot, ThroughputPlot
from ctxscope.gui.results_table import ResultsTable
from ctxscope.gui.scheduler import ViewScheduler

HINT = ("No run yet. Press Run (Ctrl+R) to measure the model in the panel at each length, open a run file "
        "(Ctrl+O), or pick one in the History tab.")


def _then_repaint(plot: LatencyPlot | MemoryPlot | ThroughputPlot, change: Callable[[], None]) -> None:
    """A scheduler tick: ``change`` one plot, and repaint it alone, now."""
    change()
    plot.viewport().repaint()


def run_label(header: RunHeader) -> str:
    s = header.settings
    # Runs overlaid that differ only by their KV-cache strategy would otherwise share a name.
    cache = f" · cache {s.cache}" if s.cache != "dynamic" else ""
    return f"{header.model.source} · {s.device} {s.dtype} {s.attn_implementation}{cache}"


class LiveView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.latency = LatencyPlot()
        self.memory = MemoryPlot()
        self.throughput = ThroughputPlot()
        self.table = ResultsTable()
        self.breakdown = BreakdownPlot()
        self.breakdown.setVisible(False)  # shown once a run brings a breakdown (--breakdown)
        self.breakdown_mode = QComboBox()
        self.breakdown_mode.addItems(["prefill", "decode", "forward"])
        self.breakdown_mode.currentTextChanged.connect(self.breakdown.set_mode)
        self.breakdown_share = QCheckBox("breakdown as shares")
        self.breakdown_share.setChecked(True)
        self.breakdown_share.toggled.connect(self.breakdown.set_share)
        self.breakdown_controls = QWidget()
        bc = QHBoxLayout(self.breakdown_controls)
        bc.setContentsMargins(0, 0, 0, 0)
        bc.addWidget(QLabel("breakdown of"))
        bc.addWidget(self.breakdown_mode)
        bc.addWidget(self.breakdown_share)
        self.breakdown_controls.setVisible(False)
        self.scheduler = ViewScheduler(self)
        self.shown: dict[str, RunHeader] = {}  # runs in the plots, by id
        self.finished: dict[str, tuple[RunResult, Path | None]] = {}  # finished runs shown (for export)
        self.log_latency = QCheckBox("log latency axis")
        self.log_latency.toggled.connect(self.latency.set_log_y)
        self.memory_mode = QComboBox()
        self.memory_mode.addItems(["prefill", "decode", "forward"])
        self.memory_mode.currentTextChanged.connect(self.memory.set_mode)
        self.hint = QLabel(HINT)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("background: palette(alternate-base); padding: 6px; border-radius: 3px;")
        controls = QHBoxLayout()
        controls.addWidget(self.log_latency)
        controls.addStretch(1)
        controls.addWidget(self.breakdown_controls)
        controls.addWidget(QLabel("memory of"))
        controls.addWidget(self.memory_mode)
        grid = QGridLayout()
        grid.addWidget(self.latency, 0, 0)
        grid.addWidget(self.memory, 0, 1)
        grid.addWidget(self.throughput, 1, 0)
        grid.addWidget(self.table, 1, 1)
        grid.addWidget(self.breakdown, 2, 0, 1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.hint)
        layout.addLayout(controls)
        layout.addLayout(grid, 1)

    @property
    def plots(self) -> tuple[LatencyPlot, MemoryPlot, ThroughputPlot]:
        return self.latency, self.memory, self.throughput

    def clear(self) -> None:
        self.scheduler.clear()
        for plot in self.plots:
            plot.clear_runs()
        self.table.clear_points()
        self.breakdown.clear_runs()
        self._show_breakdown(False)
        self.shown.clear()
        self.finished.clear()

    def start_run(self, header: RunHeader) -> None:
        """A new sweep replaces what is shown: each view cleared in a scheduler tick of its
        own, then the run joined (clearing every view in one turn, with the layout and the
        paint of the whole tab it brings, held the UI thread ~60 ms on a 2-core CPU, and
        three times that beside the sweep's own threads). Points queue behind."""
        self.scheduler.clear()
        self.shown.clear()
        self.finished.clear()
        self.shown[header.id] = header  # points that arrive before the ticks ran queue behind them
        # The line above the plots names the run while it is measured: hiding it laid the
        # whole tab out again (40 ms at 1440×900), and it says what the plots are filling with.
        self.hint.setText(f"Measuring {run_label(header)} …")
        self.hint.setVisible(True)
        for plot in self.plots:
            self.scheduler.push(partial(_then_repaint, plot, plot.clear_runs))
        self.scheduler.push(self.memory.build_legend)  # the heaviest part of its first curve
        for plot in self.plots:  # the sweep's lengths on each x axis, before its first point
            self.scheduler.push(partial(_then_repaint, plot, partial(plot.plan_lengths, header.settings.lengths)))
        self.scheduler.push(self.table.clear_points)
        self.scheduler.push(self._clear_breakdown)
        self.scheduler.push(partial(self.begin_run, header, keep_hint=True))

    def _clear_breakdown(self) -> None:
        self.breakdown.clear_runs()
        self._show_breakdown(False)

    def say(self, text: str) -> None:
        """A line above the plots (the max-context answer, a search under way)."""
        self.hint.setText(text)
        self.hint.setVisible(True)

    def begin_run(self, header: RunHeader, *, keep_hint: bool = False) -> None:
        """A run joins the views: capacity line, memory mode, predictions of the first."""
        if not keep_hint:
            self.hint.setVisible(False)
        self.shown[header.id] = header
        if len(self.shown) == 1:
            self.show_predictions(header)
        if header.id not in self.finished:  # a sweep about to run (an opened run is fitted to its points)
            for plot in self.plots:
                plot.plan_lengths(header.settings.lengths)
        env = header.environment
        if header.settings.device.startswith("cuda") and env.gpu_memory_bytes:
            self.memory.set_capacity(env.gpu_memory_bytes, "device memory")
        else:
            self.memory.set_capacity(env.memory_bytes, "system memory", in_view=False)
        modes = header.settings.modes
        if self.memory_mode.currentText() not in modes and modes:
            self.memory_mode.setCurrentText(modes[0])
        if header.settings.breakdown and len(self.shown) == 1:
            self._show_breakdown(True)
            if self.breakdown_mode.currentText() not in modes and modes:
                self.breakdown_mode.setCurrentText(modes[0])

    def _show_breakdown(self, on: bool) -> None:
        self.breakdown.setVisible(on)
        self.breakdown_controls.setVisible(on)

    def add_point(self, run_id: str, point: Point) -> None:
        """Queue the point into every plot and the table (one view per scheduler tick)."""
        header = self.shown[run_id]
        label = run_label(header)
        for plot in self.plots:
            self.scheduler.push(partial(self._update_plot, plot, run_id, label, point))
        self.scheduler.push(partial(self._update_table, label, point, header))
        if point.breakdown:
            self.scheduler.push(partial(self.breakdown.add_point, run_id, point))

    def finish_run(self, run: RunResult, maps: Path | None) -> None:
        """The run is complete: its views are fitted snugly and its latency fits drawn, a
        view per scheduler tick behind the points still queued (all in one turn held the
        UI thread 45–65 ms on a 2-core CPU). A run no longer shown (a run opened from the
        history replaced it meanwhile) leaves the views alone."""
        if run.id not in self.shown:
            return
        self.finished[run.id] = (run, maps)
        if self.hint.isVisibleTo(self) and self.hint.text().startswith("Measuring "):
            ok = sum(p.status == "ok" for p in run.points)
            self.hint.setText(f"{run_label(run.header)}: run {run.id} {run.status}, {ok} of "
                              f"{plural(len(run.points), 'point')} measured.")
        for plot in self.plots:  # the room left for the next points is not needed now
            self.scheduler.push(partial(_then_repaint, plot, partial(plot.fit, snug=True)))
        self.scheduler.push(self.table.fit_columns)
        self.scheduler.push(partial(self.show_fits, run))

    def show_run(self, run: RunResult, maps: Path | None, *, replace_shown: bool = True) -> None:
        """A finished run (history or file) into the plots and table, at once."""
        if replace_shown:
            self.clear()
        self.finished[run.id] = (run, maps)
        self.begin_run(run.header)
        if replace_shown:
            self.show_fits(run)
        for point in run.points:
            self.add_point(run.id, point)
        self.scheduler.flush()
        for plot in self.plots:
            plot.fit(snug=True)
        self.table.fit_columns()

    def show_predictions(self, header: RunHeader) -> None:
        """The analytic predictions: roofline latency per mode, weights + KV."""
        from ctxscope.core.predict.efficiency import predicted_latency, predicted_memory

        memory = predicted_memory(header)
        if not memory:
            return
        for mode in header.settings.modes:
            latency = predicted_latency(header, mode)
            self.latency.set_prediction(mode, list(latency), list(latency.values()))
        self.memory.set_prediction(list(memory), list(memory.values()))

    def show_fits(self, run: RunResult) -> None:
        from ctxscope.core.predict.efficiency import fit_run

        for mode in run.header.settings.modes:
            self.latency.set_fit(mode, fit_run(run, mode), [p.length for p in run.ok_points(mode)])

    def _update_plot(self, plot: LatencyPlot | MemoryPlot | ThroughputPlot, run_id: str, label: str,
                     point: Point) -> None:
        if plot.prepare(run_id, label, point.mode):  # a new curve: its items this tick, its data the next
            self.scheduler.push_front(partial(self._update_plot, plot, run_id, label, point))
            return
        plot.add_point(run_id, label, point)
        if not plot.shows(run_id, point.mode):
            return  # nothing drawn changed (the memory plot's other mode, a hidden curve)
        # The new range now, not at the next paint (the range change would paint the plot,
        # and its legend, again); and only when the point falls outside the view.
        plot.fit()
        plot.place_legend()  # against the range it will be drawn with
        plot.viewport().repaint()  # this view alone, now: one bounded slice per turn

    def _update_table(self, label: str, point: Point, header: RunHeader) -> None:
        from ctxscope.core.predict.efficiency import point_efficiency

        first = self.table.rowCount() == 0
        efficiency = point_efficiency(RunResult(header=header, status="running"), point) if header.analytic else None
        self.table.add_point(label, point, efficiency)
        if first:  # sizing columns costs ~3 ms a call: once per run, not per point
            self.table.fit_columns()
