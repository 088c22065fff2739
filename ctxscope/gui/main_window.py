"""The main window: wires panels, plots and the runner together; holds no logic of its own
beyond that (and the history store, read on the UI thread: SQLite reads take ~1 ms)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QMainWindow,
                               QMessageBox, QProgressBar, QPushButton, QScrollArea, QSplitter, QTabWidget,
                               QVBoxLayout, QWidget)

from ctxscope.core.errors import CtxscopeError
from ctxscope.core.events import Progress
from ctxscope.core.paths import data_dir, database_path
from ctxscope.core.results import Point, RunHeader, RunResult
from ctxscope.core.spec import ModelSpec, SweepConfig
from ctxscope.gui.attention_view import AttentionView
from ctxscope.gui.compare_view import CompareView
from ctxscope.gui.tools import ToolsMixin
from ctxscope.gui.history_panel import HistoryPanel
from ctxscope.gui.memory_plot import MemoryPlot
from ctxscope.gui.model_panel import RANDOM_BANNER, ModelPanel
from ctxscope.gui.plots import LatencyPlot, ThroughputPlot
from ctxscope.gui.results_table import ResultsTable
from ctxscope.gui.runner import LoadedSummary, SweepRunner
from ctxscope.gui.sweep_panel import SweepPanel
from ctxscope.gui.telemetry_strip import TelemetryStrip
from ctxscope.report.fmt import fmt_seconds
from ctxscope.store import RunStore


DEFAULT_SOURCE = "preset:gpt2"  # first run: small, no download, fits the default lengths


def settings() -> QSettings:
    """UI state lives beside the run history, so ``CTXSCOPE_HOME`` isolates both."""
    return QSettings(str(data_dir() / "gui.ini"), QSettings.Format.IniFormat)


class MainWindow(ToolsMixin, QMainWindow):
    def __init__(self, runner: SweepRunner | None = None) -> None:
        super().__init__()
        # The platform appends the application display name ("— ctxscope") itself.
        self.setWindowTitle("context-length profiler")
        self.runner = runner or SweepRunner(self)
        self.runner.setParent(self)
        self.model_panel = ModelPanel()
        self.sweep_panel = SweepPanel()
        self.latency = LatencyPlot()
        self.memory = MemoryPlot()
        self.throughput = ThroughputPlot()
        self.table = ResultsTable()
        self.history = HistoryPanel()
        self.attention = AttentionView()
        self.compare = CompareView(self._load_for_compare)
        self.telemetry = TelemetryStrip()
        self.current_run: str | None = None
        self.exporting = False  # a report is being written by a worker thread
        self.shown: dict[str, RunHeader] = {}
        self.shown_runs: dict[str, tuple[RunResult, Path | None]] = {}  # finished runs in Live, for export
        # View updates are queued and applied one at a time, each view painted at once:
        # repainting every plot in one turn takes ~75 ms at 1440×900 (software raster),
        # long enough to stall input; one view stays near 10–20 ms. The 16 ms spacing
        # lets input and other timers in between slices (a 0 ms timer would starve them).
        self._pending: deque[Callable[[], None]] = deque()
        self._drain = QTimer(self)
        self._drain.setInterval(16)
        self._drain.timeout.connect(self._on_drain_timeout)
        self._build_layout()
        self._build_menus()
        self._connect()
        self._restore_settings()
        self.refresh_history()

    # -- construction --------------------------------------------------------------
    def _build_layout(self) -> None:
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.model_panel)
        left_layout.addWidget(self.sweep_panel)
        left_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(400)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.error_banner = QLabel()
        self.error_banner.setWordWrap(True)
        self.error_banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_banner.setStyleSheet("background: #f8d7da; color: #842029; padding: 6px; border-radius: 3px;")
        dismiss = QPushButton("Dismiss")
        dismiss.clicked.connect(lambda: self.error_box.setVisible(False))
        self.error_box = QWidget()
        error_row = QHBoxLayout(self.error_box)
        error_row.setContentsMargins(0, 0, 0, 0)
        error_row.addWidget(self.error_banner, 1)
        error_row.addWidget(dismiss)
        self.error_box.setVisible(False)
        self.run_banner = QLabel(RANDOM_BANNER)
        self.run_banner.setStyleSheet("background: #fff3cd; color: #664d03; padding: 4px; border-radius: 3px;")
        self.run_banner.setVisible(False)

        self.log_latency = QCheckBox("log latency axis")
        self.log_latency.toggled.connect(self.latency.set_log_y)
        self.memory_mode = QComboBox()
        self.memory_mode.addItems(["prefill", "decode", "forward"])
        self.memory_mode.currentTextChanged.connect(self.memory.set_mode)
        controls = QHBoxLayout()
        controls.addWidget(self.log_latency)
        controls.addStretch(1)
        controls.addWidget(QLabel("memory of"))
        controls.addWidget(self.memory_mode)
        grid = QGridLayout()
        grid.addWidget(self.latency, 0, 0)
        grid.addWidget(self.memory, 0, 1)
        grid.addWidget(self.throughput, 1, 0)
        grid.addWidget(self.table, 1, 1)
        self.live_hint = QLabel("No run yet. Press Run (Ctrl+R) to measure the model in the panel at each length, "
                                "open a run file (Ctrl+O), or pick one in the History tab.")
        self.live_hint.setWordWrap(True)
        self.live_hint.setStyleSheet("background: palette(alternate-base); padding: 6px; border-radius: 3px;")
        live = QWidget()
        live_layout = QVBoxLayout(live)
        live_layout.addWidget(self.live_hint)
        live_layout.addLayout(controls)
        live_layout.addLayout(grid, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(live, "Live")
        self.tabs.addTab(self.attention, "Attention")
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.addTab(self.history, "History")
        center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.addWidget(self.error_box)
        center_layout.addWidget(self.run_banner)
        center_layout.addWidget(self.tabs, 1)
        center_layout.addWidget(self.telemetry)
        splitter = QSplitter()
        splitter.addWidget(scroll)
        splitter.addWidget(center)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)

        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setVisible(False)
        self.status_label = QLabel("Ready.")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)

    def _build_menus(self) -> None:
        def action(menu, text: str, shortcut, slot) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(slot)
            menu.addAction(act)
            return act

        file_menu = self.menuBar().addMenu("&File")
        self.open_action = action(file_menu, "&Open run file…", "Ctrl+O", lambda: self.open_run_file())
        self.export_action = action(file_menu, "&Export report…", "Ctrl+E", lambda: self.export_report())
        file_menu.addSeparator()
        action(file_menu, "&Quit", "Ctrl+Q", self.close)
        run_menu = self.menuBar().addMenu("&Run")
        self.run_action = action(run_menu, "&Run sweep", "Ctrl+R", self.sweep_panel.run_button.click)
        self.matrix_action = action(run_menu, "Compare &kernels and dtypes…", "Ctrl+Shift+R",
                                    lambda: self.run_matrix())
        self.maxctx_action = action(run_menu, "&Find max context…", "Ctrl+M", lambda: self.find_max_context())
        self.cancel_action = action(run_menu, "&Cancel", "Esc", self.runner.cancel)
        edit_menu = self.menuBar().addMenu("&Edit")
        for name, plot in (("latency", self.latency), ("memory", self.memory), ("throughput", self.throughput)):
            action(edit_menu, f"Copy {name} plot", None, partial(self.copy_plot, plot))
            action(edit_menu, f"Save {name} plot as PNG/SVG…", None, partial(self.save_plot, plot))
        help_menu = self.menuBar().addMenu("&Help")
        action(help_menu, "&About ctxscope", None, self.show_about)
        self._build_toolbar()
        self.cancel_action.setEnabled(False)

    def _build_toolbar(self) -> None:
        from PySide6.QtGui import QIcon

        from ctxscope._resources import resource_path

        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")  # saveState/restoreState need a name
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for act, icon, text in ((self.run_action, "run", "Run"), (self.cancel_action, "stop", "Cancel"),
                                (self.matrix_action, "compare", "Compare kernels/dtypes"),
                                (self.open_action, "open", "Open run"), (self.export_action, "export", "Export report")):
            act.setIcon(QIcon(str(resource_path("icons", "toolbar", f"{icon}.svg"))))
            act.setIconText(text)
            act.setToolTip(f"{act.text().replace('&', '').rstrip('…')} ({act.shortcut().toString()})")
            bar.addAction(act)

    def _connect(self) -> None:
        self.model_panel.loadRequested.connect(self._on_model_panel_load_requested)
        self.sweep_panel.runRequested.connect(self._on_sweep_panel_run_requested)
        self.sweep_panel.cancelRequested.connect(self.runner.cancel)
        self.history.openRequested.connect(self.open_stored_run)
        self.history.overlayRequested.connect(lambda run_id: self.open_stored_run(run_id, overlay=True))
        self.history.deleteRequested.connect(self._on_history_delete_requested)
        self.history.refreshRequested.connect(self.refresh_history)
        self.history.compareRequested.connect(self._on_history_compare_requested)
        self.compare.addFileRequested.connect(lambda: self.open_run_file(into_compare=True))
        self.compare.exportRequested.connect(lambda: self.export_report(comparison=True))
        from ctxscope.gui.export import install_svg_workaround

        install_svg_workaround()  # pyqtgraph's own Export… dialog gets a working SVG exporter
        for plot in (self.latency, self.memory, self.throughput):
            menu = plot.getPlotItem().vb.menu
            menu.addSeparator()
            menu.addAction("Copy plot (PNG + SVG)").triggered.connect(partial(self.copy_plot, plot))
            menu.addAction("Save plot as PNG/SVG…").triggered.connect(partial(self.save_plot, plot))
        r = self.runner
        r.busyChanged.connect(self._on_runner_busy_changed)
        r.devicesFound.connect(self.model_panel.set_devices)
        self.model_panel.gpuChanged.connect(self.telemetry.set_device)
        r.modelLoading.connect(self._on_runner_model_loading)
        r.modelLoaded.connect(self._on_runner_model_loaded)
        r.sweepStarted.connect(self._on_runner_sweep_started)
        r.progressChanged.connect(self._on_runner_progress_changed)
        r.pointReady.connect(self._on_runner_point)
        r.pointFailed.connect(self._on_runner_point)
        r.sweepFinished.connect(self._on_runner_sweep_finished)
        r.attentionReady.connect(self._on_runner_attention_ready)
        r.matrixFinished.connect(self._on_runner_matrix_finished)
        r.probeDone.connect(self._on_runner_probe_done)
        r.maxContextFound.connect(self._on_runner_max_context_found)
        r.confirmRequested.connect(self._on_runner_confirm_requested)
        r.jobFailed.connect(self.show_error)

    # -- actions -------------------------------------------------------------------
    def start_sweep(self, spec: ModelSpec, cfg: SweepConfig) -> bool:
        self.error_box.setVisible(False)
        if not self.runner.run(spec, cfg):
            self.status_label.setText("A sweep is already running: cancel it first (Esc).")
            return False
        self.sweep_panel.set_config(cfg)  # the panel shows what runs, however it was started
        self.tabs.setCurrentIndex(0)
        return True

    def show_error(self, message: str) -> None:
        self.error_banner.setText(message)
        self.error_box.setVisible(True)
        self.status_label.setText("Error: " + message.splitlines()[0][:120])

    def show_run(self, run: RunResult, *, replace_shown: bool = True, maps_dir: Path | None = None) -> None:
        """Put a finished run (from the history or a file) into the plots and table; its
        attention maps come from ``maps_dir`` (default: the history's own folder)."""
        if replace_shown:
            self._clear_views()
            self._show_attention(run, maps_dir)
        self._begin_run(run.header)
        self.shown_runs[run.id] = (run, self._maps_path(run, maps_dir))
        if replace_shown:
            self._show_fits(run)
        for point in run.points:
            self._add_point(run.header.id, point)
        self.flush_views()
        self.table.resizeColumnsToContents()
        shown = f" with {len(self.shown) - 1} other run(s)" if len(self.shown) > 1 else ""
        self.status_label.setText(f"Showing run {run.id} ({run.status}, {len(run.points)} points){shown}.")

    def _show_attention(self, run: RunResult, maps_dir: Path | None) -> None:
        from ctxscope.core.attention.storage import load

        entries = [e for e in run.attention if e.get("status") == "ok"]
        if not entries:
            return
        try:
            self.attention.set_stored(entries, load(self._maps_path(run, maps_dir)))
        except CtxscopeError as exc:
            self.show_error(f"attention maps of run {run.id} unavailable: {exc}")

    def open_stored_run(self, run_id: str, *, overlay: bool = False) -> None:
        try:
            with RunStore(database_path(), readonly=True) as store:
                run = store.get_run(run_id)
        except CtxscopeError as exc:
            self.show_error(str(exc))
            return
        if overlay and run.id in self.shown:
            self.status_label.setText(f"Run {run.id} is already shown.")
            return
        self.show_run(run, replace_shown=not overlay)
        self.tabs.setCurrentIndex(0)

    @staticmethod
    def _maps_path(run: RunResult, maps_dir: Path | None) -> Path:
        from ctxscope.store.attention_files import maps_path

        return maps_path(run.id, maps_dir)

    def _load_for_compare(self, run_id: str) -> tuple[RunResult, Path | None]:
        with RunStore(database_path(), readonly=True) as store:
            run = store.get_run(run_id)
        return run, self._maps_path(run, None)

    def open_run_file(self, path: str | None = None, *, into_compare: bool = False) -> None:
        from ctxscope.core.serialize import load_run

        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Open a ctxscope run", filter="ctxscope run (*.json)")
            if not path:
                return
        try:
            run = load_run(path)
        except CtxscopeError as exc:
            self.show_error(str(exc))
            return
        if into_compare:
            self.compare.add_file_run(run, self._maps_path(run, Path(path).parent))
            return
        self.show_run(run, maps_dir=Path(path).parent)
        self.tabs.setCurrentIndex(0)

    def refresh_history(self) -> None:
        # Read-only: the history lists in a read-only or full data folder too; a damaged
        # one is moved aside (and what reads recovered) by the open, which says so.
        try:
            with RunStore(database_path(), readonly=True) as store:
                runs = store.list_runs()
                notices = store.notices
            self.history.set_runs(runs)
            self.compare.set_available(runs)
        except CtxscopeError as exc:
            self.history.set_problem(str(exc))
            self.show_error(str(exc))
            return
        self.history.set_problem(" ".join(n[0].upper() + n[1:] + "." for n in notices) or None)
        if notices:
            self.show_error("\n".join(n[0].upper() + n[1:] + "." for n in notices))

    def show_about(self) -> None:
        from ctxscope.gui.about import about_text

        QMessageBox.about(self, "About ctxscope", about_text())

    # -- helpers -------------------------------------------------------------------
    def flush_views(self) -> None:
        """Apply every queued view update now."""
        while self._pending:
            self._pending.popleft()()
        self._drain.stop()

    def _on_drain_timeout(self) -> None:
        if self._pending:
            self._pending.popleft()()
        if not self._pending:
            self._drain.stop()

    def _clear_views(self) -> None:
        self.attention.clear()
        self._pending.clear()
        self._drain.stop()
        for plot in (self.latency, self.memory, self.throughput):
            plot.clear_runs()
        self.table.clear_points()
        self.shown.clear()
        self.shown_runs.clear()

    def _run_label(self, header: RunHeader) -> str:
        s = header.settings
        return f"{header.model.source} · {s.device} {s.dtype} {s.attn_implementation}"

    def _begin_run(self, header: RunHeader) -> None:
        self.live_hint.setVisible(False)
        self.shown[header.id] = header
        if len(self.shown) == 1:
            self._show_predictions(header)
        env = header.environment
        if header.settings.device.startswith("cuda") and env.gpu_memory_bytes:
            self.memory.set_capacity(env.gpu_memory_bytes, "device memory")
        else:
            self.memory.set_capacity(env.memory_bytes, "system memory", in_view=False)
        modes = header.settings.modes
        if self.memory_mode.currentText() not in modes and modes:
            self.memory_mode.setCurrentText(modes[0])
        self.run_banner.setVisible(any(h.model.random_weights for h in self.shown.values()))

    def _add_point(self, run_id: str, point: Point) -> None:
        label = self._run_label(self.shown[run_id])
        for plot in (self.latency, self.memory, self.throughput):
            self._pending.append(partial(self._update_plot, plot, run_id, label, point))
        self._pending.append(partial(self._update_table, label, point, self.shown[run_id]))
        if not self._drain.isActive():
            self._drain.start()

    @staticmethod
    def _update_plot(plot, run_id: str, label: str, point: Point) -> None:
        plot.add_point(run_id, label, point)
        plot.viewport().repaint()  # this view alone, now: one bounded slice per turn

    def _update_table(self, label: str, point: Point, header: RunHeader) -> None:
        from ctxscope.core.efficiency import point_efficiency

        first = self.table.rowCount() == 0
        efficiency = point_efficiency(RunResult(header=header, status="running"), point) if header.analytic else None
        self.table.add_point(label, point, efficiency)
        if first:  # sizing columns costs ~3 ms a call: once per run, not per point
            self.table.resizeColumnsToContents()

    # -- slots ---------------------------------------------------------------------
    def _on_model_panel_load_requested(self, spec: ModelSpec) -> None:
        self.error_box.setVisible(False)
        if not self.runner.load(spec):
            self.status_label.setText("Busy: wait for the current job or cancel it.")

    def _on_sweep_panel_run_requested(self, cfg: SweepConfig) -> None:
        self.start_sweep(self.model_panel.spec(), cfg)

    def _on_history_delete_requested(self, run_id: str) -> None:
        answer = QMessageBox.question(self, "Delete run", f"Delete run {run_id} and all its points?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            with RunStore(database_path()) as store:
                store.delete_run(run_id)
        except CtxscopeError as exc:
            self.show_error(str(exc))
        self.refresh_history()

    def _on_runner_busy_changed(self, busy: bool) -> None:
        self.sweep_panel.set_running(busy)
        self.model_panel.set_busy(busy)
        self.run_action.setEnabled(not busy)
        self.matrix_action.setEnabled(not busy)
        self.maxctx_action.setEnabled(not busy)
        self.cancel_action.setEnabled(busy)
        if not busy:
            self.progress.setVisible(False)

    def _on_runner_model_loading(self, source: str) -> None:
        self.model_panel.set_loading(source)
        self.status_label.setText(f"Loading {source} …")
        self.progress.setRange(0, 0)  # indeterminate while loading
        self.progress.setVisible(True)

    def _on_runner_model_loaded(self, summary: LoadedSummary) -> None:
        self.model_panel.set_loaded(summary)
        if summary.gpu_uuids:
            self.telemetry.set_device(summary.gpu_uuids)  # every GPU the model occupies
        self.sweep_panel.set_model(summary.info.is_decoder, summary.info.max_positions)
        self.status_label.setText(f"Loaded {summary.spec.source} on {summary.device}.")
        self.progress.setVisible(False)

    def _on_runner_sweep_started(self, header: RunHeader) -> None:
        self._clear_views()
        self.current_run = header.id
        self.sweep_panel.show_modes(header.settings.modes)  # the modes the model really has
        self.setWindowTitle(f"{header.model.source} · {header.settings.device} {header.settings.dtype}")
        self._begin_run(header)
        total = len(header.settings.lengths) * len(header.settings.modes)
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.progress.setVisible(True)

    def _on_runner_progress_changed(self, event: Progress) -> None:
        self.progress.setRange(0, event.total)  # the plan's own count (attention passes included)
        self.progress.setValue(event.done)
        self.status_label.setText(f"{event.mode} at L={event.length} — point {event.done + 1} of {event.total}, "
                                  f"ETA {fmt_seconds(event.eta_s)}")

    def _on_runner_point(self, point: Point) -> None:
        if self.current_run is not None:
            self._add_point(self.current_run, point)
            self.progress.setValue(self.progress.value() + 1)

    def _on_runner_confirm_requested(self, check) -> None:
        """The memory guard predicts a point cannot fit: the user decides."""
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "Point predicted not to fit",
            f"{check.mode} at L={check.length:,} is {check.reason().removesuffix('; --force runs it anyway')}.\n\n"
            "Run it anyway? It may swap or run out of memory (out-of-memory is recorded as data).",
            buttons.Yes | buttons.YesToAll | buttons.No | buttons.NoToAll, buttons.No)
        self.runner.answer_confirm(answer in (buttons.Yes, buttons.YesToAll),
                                   for_all=answer in (buttons.YesToAll, buttons.NoToAll))

    def _on_runner_attention_ready(self, result) -> None:
        if result.status == "ok":
            self.attention.add_result(result)
        else:
            self.status_label.setText(f"Attention at L={result.length}: {result.status} — {result.error}")

    def _on_runner_sweep_finished(self, run: RunResult) -> None:
        self.flush_views()
        self.table.resizeColumnsToContents()
        ok = sum(p.status == "ok" for p in run.points)
        self.status_label.setText(f"Run {run.id} {run.status}: {ok} of {len(run.points)} points measured.")
        self.shown_runs[run.id] = (run, self._maps_path(run, None))
        self._show_fits(run)
        self.refresh_history()
        self.history.select(run.id)

    # -- persistence ---------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = settings()
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1440, 900)
        state = s.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        source = s.value("model/source") or DEFAULT_SOURCE
        if source:
            # trust_remote_code is deliberately never restored.
            self.model_panel.set_spec(ModelSpec(source=str(source), dtype=str(s.value("model/dtype", "auto")),
                                                device=str(s.value("model/device", "auto")),
                                                attn_implementation=s.value("model/attn") or None,
                                                random_weights=s.value("model/random_weights", "false") == "true"))
        lengths = s.value("sweep/lengths")
        if lengths:
            self.sweep_panel.lengths.setText(str(lengths))

    def save_settings(self) -> None:
        s = settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        spec = replace(self.model_panel.spec(), trust_remote_code=False)
        s.setValue("model/source", spec.source)
        s.setValue("model/dtype", spec.dtype)
        s.setValue("model/device", spec.device)
        s.setValue("model/attn", spec.attn_implementation or "")
        s.setValue("model/random_weights", "true" if spec.random_weights else "false")
        s.setValue("sweep/lengths", self.sweep_panel.lengths.text())
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self.exporting:
            self._export_job.wait()  # a report being written is finished, not cut off
        self.save_settings()
        self.telemetry.timer.stop()
        self.runner.shutdown()
        super().closeEvent(event)
