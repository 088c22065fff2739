"""What the window shows while the runner works: busy state, loading, each point as it
arrives, progress and ETA, the memory guard's question, the end of a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar

from ctxscope.core.events import LoadedSummary, Progress
from ctxscope.core.results import Point, RunHeader, RunResult
from ctxscope.core.units import fmt_seconds
from ctxscope.gui.attention_view import AttentionView
from ctxscope.gui.controllers import Feedback
from ctxscope.gui.history_controller import maps_of
from ctxscope.gui.live_view import LiveView
from ctxscope.gui.menus import Actions
from ctxscope.gui.model_panel import ModelPanel
from ctxscope.gui.runner import SweepRunner
from ctxscope.gui.sweep_panel import SweepPanel
from ctxscope.gui.telemetry_strip import TelemetryStrip
from ctxscope.core.units import plural


class RunPresenter(QObject):
    def __init__(self, window: QMainWindow, runner: SweepRunner, *, model_panel: ModelPanel, sweep_panel: SweepPanel,
                 live: LiveView, attention: AttentionView, telemetry: TelemetryStrip, run_banner: QLabel,
                 progress: QProgressBar, actions: Actions, feedback: Feedback,
                 clear_views: Callable[..., None], refresh_history: Callable[[], None]) -> None:
        super().__init__(window)
        self.window, self.runner = window, runner
        self.model_panel, self.sweep_panel, self.live, self.attention = model_panel, sweep_panel, live, attention
        self.telemetry, self.run_banner, self.progress, self.actions = telemetry, run_banner, progress, actions
        self.feedback, self.clear_views, self.refresh_history = feedback, clear_views, refresh_history
        self.current_run: str | None = None
        r = runner
        for signal, slot in ((r.busyChanged, self._on_runner_busy_changed),
                             (r.modelLoading, self._on_runner_model_loading),
                             (r.modelLoaded, self._on_runner_model_loaded),
                             (r.modelNote, self.model_panel.add_note),
                             (r.sweepStarted, self._on_runner_sweep_started),
                             (r.progressChanged, self._on_runner_progress_changed),
                             (r.pointReady, self._on_runner_point), (r.pointFailed, self._on_runner_point),
                             (r.attentionReady, self._on_runner_attention_ready),
                             (r.confirmRequested, self._on_runner_confirm_requested),
                             (r.sweepFinished, self._on_runner_sweep_finished)):
            signal.connect(slot)
        # The measuring thread waits for the Live tab's updates between points (gui/pacing.py).
        runner.views_busy = lambda: len(live.scheduler) > 0
        live.scheduler.drained.connect(runner.pacer.applied)

    def _on_runner_busy_changed(self, busy: bool) -> None:
        self.sweep_panel.set_running(busy)
        self.model_panel.set_busy(busy)
        for action in (self.actions.run, self.actions.matrix, self.actions.maxctx):
            action.setEnabled(not busy)
        self.actions.cancel.setEnabled(busy)
        if not busy:
            self.progress.setVisible(False)

    def _on_runner_model_loading(self, source: str) -> None:
        self.model_panel.set_loading(source)
        self.feedback.status(f"Loading {source} …")
        self.progress.setRange(0, 0)  # indeterminate while loading
        self.progress.setVisible(True)

    def _on_runner_model_loaded(self, summary: LoadedSummary) -> None:
        self.model_panel.set_loaded(summary)
        if summary.gpu_uuids:
            self.telemetry.set_device(summary.gpu_uuids)  # every GPU the model occupies
        self.sweep_panel.set_model(summary.info.is_decoder, summary.info.max_positions)
        self.feedback.status(f"Loaded {summary.spec.source} on {summary.device}.")
        self.progress.setVisible(False)

    def _on_runner_sweep_started(self, header: RunHeader) -> None:
        self.clear_views(live=False)  # the Live tab clears a view per tick (LiveView.start_run)
        self.current_run = header.id
        self.sweep_panel.show_modes(header.settings.modes)  # the modes the model really has
        self.sweep_panel.show_threads(header.settings.threads)  # what torch really used (the host's, remote)
        self.window.setWindowTitle(f"{header.model.source} · {header.settings.device} {header.settings.dtype}")
        self.live.start_run(header)
        self.run_banner.setVisible(header.model.random_weights)
        self.progress.setRange(0, len(header.settings.lengths) * len(header.settings.modes))
        self.progress.setValue(0)
        self.progress.setVisible(True)

    def _on_runner_progress_changed(self, event: Progress) -> None:
        self.progress.setRange(0, event.total)  # the plan's own count (attention passes included)
        self.progress.setValue(event.done)
        self.feedback.status(f"{event.mode} at L={event.length} — point {event.done + 1} of {event.total}, "
                             f"ETA {fmt_seconds(event.eta_s)}")

    def _on_runner_point(self, point: Point) -> None:
        if self.current_run is not None and self.current_run in self.live.shown:
            self.live.add_point(self.current_run, point)
            self.progress.setValue(self.progress.value() + 1)

    def _on_runner_confirm_requested(self, check: Any) -> None:
        from ctxscope.gui.dialogs import ask_run_anyway

        run, for_all = ask_run_anyway(self.window, check)
        self.runner.answer_confirm(run, for_all=for_all)

    def _on_runner_attention_ready(self, result: Any) -> None:
        if result.status == "ok":
            self.attention.add_result(result)
        else:
            self.feedback.status(f"Attention at L={result.length}: {result.status} — {result.error}")

    def _on_runner_sweep_finished(self, run: RunResult) -> None:
        self.live.finish_run(run, maps_of(run))
        ok = sum(p.status == "ok" for p in run.points)
        self.feedback.status(f"Run {run.id} {run.status}: {ok} of {plural(len(run.points), 'point')} measured.")
        self.refresh_history()
