"""The main window: builds the panels, views and controllers and wires them together.
It owns no logic: running is the runner's, drawing the views', the history and the
tools are their controllers'."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QThreadPool, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton,
                               QScrollArea, QSplitter, QTabWidget, QVBoxLayout, QWidget)

from ctxscope.core.errors import CtxscopeError
from ctxscope.core.results import RunResult
from ctxscope.core.spec import ModelSpec, SweepConfig
from ctxscope.gui import window_settings
from ctxscope.gui.attention_view import AttentionView
from ctxscope.gui.compare_view import CompareView
from ctxscope.gui.controllers import ExportController, MatrixController, MaxContextController
from ctxscope.gui.history_controller import HistoryController, maps_of
from ctxscope.gui.history_panel import HistoryPanel
from ctxscope.gui.live_view import LiveView
from ctxscope.gui.menus import build_menus
from ctxscope.gui.model_panel import RANDOM_BANNER, ModelPanel
from ctxscope.gui.quality_view import QualityView
from ctxscope.gui.run_presenter import RunPresenter
from ctxscope.gui.runner import SweepRunner
from ctxscope.gui.sweep_panel import SweepPanel, config_of
from ctxscope.gui.telemetry_strip import TelemetryStrip
from ctxscope.core.units import plural

BANNER = "padding: 6px; border-radius: 3px;"


class MainWindow(QMainWindow):
    def __init__(self, runner: SweepRunner | None = None) -> None:
        super().__init__()
        self.setWindowTitle("context-length profiler")  # the platform appends "— ctxscope" itself
        self.runner = runner or SweepRunner(self)
        self.runner.setParent(self)
        self.model_panel, self.sweep_panel = ModelPanel(), SweepPanel()
        self.live, self.attention, self.compare, self.history = LiveView(), AttentionView(), CompareView(), HistoryPanel()
        self.telemetry = TelemetryStrip()
        self.quality = QualityView()
        self.history_controller = HistoryController(self)
        self._build_layout()
        self.matrix = MatrixController(self.runner, self.model_panel, self.sweep_panel, self.compare, self.tabs, self,
                                       self.refresh_history)
        self.maxctx = MaxContextController(self.runner, self.model_panel, self.live, self.tabs, self)
        self.exports = ExportController(self, self)
        self.menu_actions = build_menus(  # not "actions": that is QWidget.actions()
            self, open_file=self.open_run_file, export=self.export_report, run=self.sweep_panel.run_button.click,
            matrix=lambda: self.run_matrix(), maxctx=lambda: self.find_max_context(), cancel=self.runner.cancel,
            plots={"latency": self.latency, "memory": self.memory, "throughput": self.throughput},
            copy_plot=self.copy_plot, save_plot=self.save_plot, about=self.show_about)
        self.run_action = self.menu_actions.run
        self._connect()
        window_settings.restore(self, self.model_panel, self.sweep_panel)
        self.refresh_history()

    # -- what tests and tools reach: the views and the tools' state ------------------
    latency = property(lambda self: self.live.latency)
    memory = property(lambda self: self.live.memory)
    throughput = property(lambda self: self.live.throughput)
    table = property(lambda self: self.live.table)
    shown = property(lambda self: self.live.shown)
    exporting = property(lambda self: self.exports.exporting)
    _trials = property(lambda self: self.maxctx.trials)
    live_hint = property(lambda self: self.live.hint)

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
        self.error_banner = QLabel(wordWrap=True, styleSheet=f"background: #f8d7da; color: #842029; {BANNER}")
        self.error_banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        dismiss = QPushButton("Dismiss")
        dismiss.clicked.connect(lambda: self.error_box.setVisible(False))
        self.error_box = QWidget(visible=False)
        error_row = QHBoxLayout(self.error_box)
        error_row.setContentsMargins(0, 0, 0, 0)
        error_row.addWidget(self.error_banner, 1)
        error_row.addWidget(dismiss)
        self.run_banner = QLabel(RANDOM_BANNER, visible=False, styleSheet="background: #fff3cd; color: #664d03; "
                                 "padding: 1px 6px; border-radius: 3px;")
        self.tabs = QTabWidget()
        for widget, name in ((self.live, "Live"), (self.attention, "Attention"), (self.quality, "Quality"),
                             (self.compare, "Compare"), (self.history, "History")):
            self.tabs.addTab(widget, name)
        # Beside the tabs, its room kept when hidden: above them, the tab bar and every
        # plot jumped ~28 px whenever it came and went.
        self.tabs.setCornerWidget(self.run_banner, Qt.Corner.TopRightCorner)
        policy = self.run_banner.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.run_banner.setSizePolicy(policy)
        center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.addWidget(self.error_box)
        center_layout.addWidget(self.tabs, 1)
        center_layout.addWidget(self.telemetry)
        splitter = QSplitter()
        splitter.addWidget(scroll)
        splitter.addWidget(center)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)
        self.progress = QProgressBar(maximumWidth=260, visible=False)
        self.status_label = QLabel("Ready.")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)

    def _connect(self) -> None:
        from ctxscope.gui.export import install_svg_workaround

        install_svg_workaround()  # pyqtgraph's own Export… dialog gets a working SVG exporter
        self.model_panel.loadRequested.connect(self._on_model_panel_load_requested)
        self.model_panel.gpuChanged.connect(self.telemetry.set_device)
        self.model_panel.targetChanged.connect(self.runner.set_remote)  # Run on: this machine or user@host
        self.runner.remoteNote.connect(self.status)
        self.sweep_panel.runRequested.connect(lambda cfg: self.start_sweep(self.model_panel.spec(), cfg))
        self.sweep_panel.cancelRequested.connect(self.runner.cancel)
        h, hc = self.history, self.history_controller
        h.openRequested.connect(self.open_stored_run)
        h.overlayRequested.connect(lambda run_id: self.open_stored_run(run_id, overlay=True))
        h.deleteRequested.connect(self._on_history_delete_requested)
        h.refreshRequested.connect(self.refresh_history)
        h.compareRequested.connect(self._on_history_compare_requested)
        hc.listed.connect(self._on_history_listed)
        hc.opened.connect(self._on_history_opened)
        hc.loadedForCompare.connect(self.compare.add_loaded)
        hc.failed.connect(self.error)
        hc.problem.connect(self.history.set_problem)
        self.compare.runsNeeded.connect(hc.load_for_compare)
        self.compare.addFileRequested.connect(lambda: self.open_run_file(into_compare=True))
        self.compare.exportRequested.connect(lambda: self.export_report(comparison=True))
        self.runner.devicesFound.connect(self.model_panel.set_devices)
        self.runner.jobFailed.connect(self.error)
        self.presenter = RunPresenter(self, self.runner, model_panel=self.model_panel, sweep_panel=self.sweep_panel,
                                      live=self.live, attention=self.attention, telemetry=self.telemetry,
                                      run_banner=self.run_banner, progress=self.progress, actions=self.menu_actions,
                                      feedback=self, clear_views=self._clear_views,
                                      refresh_history=self.refresh_history)
        self.quality.follow(self.runner, self.model_panel.spec)  # after the presenter, which clears views first

    # -- feedback (the controllers report here) --------------------------------------
    def status(self, text: str) -> None:
        self.status_label.setText(text)

    def error(self, message: str) -> None:
        self.error_banner.setText(message)
        self.error_box.setVisible(True)
        self.status_label.setText("Error: " + message.splitlines()[0][:120])

    show_error = error

    # -- actions -----------------------------------------------------------------------
    def start_sweep(self, spec: ModelSpec, cfg: SweepConfig) -> bool:
        self.error_box.setVisible(False)
        cfg = self.quality.with_fit(spec, cfg)  # "fits" from a max-context search of this model here
        if cfg.threads is None:  # `gui --run` without --threads: the app's own default, shown and recorded
            cfg = replace(cfg, threads=self.sweep_panel.threads.value())
        if not self.runner.run(spec, cfg):
            self.status("A sweep is already running: cancel it first (Esc).")
            return False
        self.sweep_panel.set_config(cfg)  # the panel shows what runs, however it was started
        self.tabs.setCurrentIndex(0)
        return True

    def run_matrix(self, dtypes: tuple[str, ...] | None = None, kernels: tuple[str, ...] | None = None,
                   ropes: tuple[str | None, ...] = (None,), caches: tuple[str, ...] = ()) -> bool:
        self.error_box.setVisible(False)
        return self.matrix.run(dtypes, kernels, parent=self, ropes=ropes, caches=caches)

    def find_max_context(self, mode: str | None = None, budget: int | None = None, granularity: int | None = None,
                         *, ask: bool = True) -> bool:
        self.error_box.setVisible(False)
        return self.maxctx.run(mode, budget, granularity, ask=ask, parent=self)

    def export_report(self, path: str | None = None, *, comparison: bool | None = None) -> str | None:
        """The Compare tab's runs (when it shows, or ``comparison``) or the Live runs."""
        if comparison is None:
            comparison = self.tabs.currentWidget() is self.compare
        entries = self.compare.selected_runs() if comparison else list(self.live.finished.values())
        if not entries:
            self.error("Nothing to export: " + ("tick runs in the Compare tab." if comparison
                                                else "run a sweep or open a run first."))
            return None
        baseline = max(0, self.compare.baseline.currentIndex()) if comparison else 0
        return self.exports.export(entries, path, baseline, parent=self)

    def copy_plot(self, plot: object) -> None:
        self.exports.copy_plot(plot)

    def save_plot(self, plot: object, path: str | None = None) -> str | None:
        return self.exports.save_plot(plot, path, parent=self)

    def show_run(self, run: RunResult, *, replace_shown: bool = True, maps_dir: Path | None = None) -> None:
        """A finished run (history or file) in the plots, the table and Attention."""
        if replace_shown:
            self._clear_views()
            entries = [e for e in run.attention if e.get("status") == "ok"]
            if entries:
                from ctxscope.core.attention.storage import load

                try:
                    self.attention.set_stored(entries, load(maps_of(run, maps_dir)))
                except CtxscopeError as exc:
                    self.error(f"attention maps of run {run.id} unavailable: {exc}")
        self.live.show_run(run, maps_of(run, maps_dir), replace_shown=replace_shown)
        if replace_shown:
            self.quality.show_run(run)
            self.model_panel.show_run_model(run.header)  # not the last model loaded
            self.sweep_panel.set_config(config_of(run.header.settings))  # Run measures the same again
        self.run_banner.setVisible(any(h.model.random_weights for h in self.live.shown.values()))
        others = f" with {plural(len(self.live.shown) - 1, 'other run')}" if len(self.live.shown) > 1 else ""
        self.status(f"Showing run {run.id} ({run.status}, {plural(len(run.points), 'point')}){others}.")

    def open_stored_run(self, run_id: str, *, overlay: bool = False) -> None:
        self.history_controller.open(run_id, overlay=overlay)

    def open_run_file(self, path: str | None = None, *, into_compare: bool = False, overlay: bool = False) -> None:
        from ctxscope.core.serialize import load_run

        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Open a ctxscope run", filter="ctxscope run (*.json)")
            if not path:
                return
        try:
            run = load_run(path)
        except CtxscopeError as exc:
            self.error(str(exc))
            return
        if into_compare:
            self.compare.add_file_run(run, maps_of(run, Path(path).parent))
            return
        self.show_run(run, replace_shown=not overlay, maps_dir=Path(path).parent)
        self.tabs.setCurrentIndex(0)

    def refresh_history(self) -> None:
        self.history_controller.refresh()

    def flush_views(self) -> None:
        self.live.scheduler.flush()

    def _clear_views(self, *, live: bool = True) -> None:
        self.attention.clear()
        self.quality.clear()
        if live:
            self.live.clear()

    def show_about(self) -> None:
        from ctxscope.gui.about import about_text

        QMessageBox.about(self, "About ctxscope", about_text())

    # -- slots ---------------------------------------------------------------------------
    def _on_model_panel_load_requested(self, spec: ModelSpec) -> None:
        self.error_box.setVisible(False)
        if not self.runner.load(spec):
            self.status("Busy: wait for the current job or cancel it.")

    def _on_history_listed(self, runs: list, notices: list[str]) -> None:
        self.history.set_runs(runs)
        self.compare.set_available(runs)
        text = " ".join(n[0].upper() + n[1:] + "." for n in notices)
        self.history.set_problem(text or None)
        if notices:
            self.error("\n".join(n[0].upper() + n[1:] + "." for n in notices))
        if self.presenter.current_run is not None:
            self.history.select(self.presenter.current_run)
        self.matrix.history_listed(runs)

    def _on_history_opened(self, run: RunResult, overlay: bool) -> None:
        if overlay and run.id in self.live.shown:
            self.status(f"Run {run.id} is already shown.")
            return
        self.show_run(run, replace_shown=not overlay)
        self.tabs.setCurrentIndex(0)

    def _on_history_delete_requested(self, run_id: str) -> None:
        answer = QMessageBox.question(self, "Delete run", f"Delete run {run_id} and all its points?")
        if answer == QMessageBox.StandardButton.Yes:
            self.history_controller.delete(run_id)

    def _on_history_compare_requested(self, run_ids: list[str]) -> None:
        self.compare.tick(run_ids)
        self.tabs.setCurrentWidget(self.compare)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        window_settings.save(self, self.model_panel, self.sweep_panel)
        self.telemetry.timer.stop()
        self.runner.shutdown()
        QThreadPool.globalInstance().waitForDone(60_000)  # an export or history read finishes, not cut off
        super().closeEvent(event)
