"""The window's tools beyond a single sweep, each a small controller the window holds
and wires: the kernel × dtype matrix, the max-context search, report export. Each
is given what it uses — no reaching into the window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QTabWidget, QWidget
from superqt.utils import create_worker

from ctxscope.core.errors import CtxscopeError
from ctxscope.core.units import fmt_bytes
from ctxscope.gui.compare_view import CompareView
from ctxscope.gui.live_view import LiveView
from ctxscope.gui.model_panel import ModelPanel
from ctxscope.gui.runner import SweepRunner
from ctxscope.gui.sweep_panel import SweepPanel
from ctxscope.core.units import plural


class Feedback(Protocol):
    """Where a controller reports: the status bar and the red error bar."""

    def status(self, text: str) -> None: ...

    def error(self, text: str) -> None: ...


class MatrixController(QObject):
    """Run → Compare kernels and dtypes: one matrix job, then the Compare tab."""

    def __init__(self, runner: SweepRunner, model_panel: ModelPanel, sweep_panel: SweepPanel, compare: CompareView,
                 tabs: QTabWidget, feedback: Feedback, refresh_history: Callable[[], None]) -> None:
        super().__init__(runner)
        self.runner, self.model_panel, self.sweep_panel = runner, model_panel, sweep_panel
        self.compare, self.tabs, self.feedback, self.refresh_history = compare, tabs, feedback, refresh_history
        self.pending: tuple[str, ...] = ()
        runner.matrixFinished.connect(self._on_runner_matrix_finished)

    def run(self, dtypes: tuple[str, ...] | None = None, kernels: tuple[str, ...] | None = None,
            parent: QWidget | None = None, cluster: str | None = None,
            ropes: tuple[str | None, ...] = (None,), caches: tuple[str, ...] = ()) -> bool:
        """Sweep the panel's model for every dtype × kernel × RoPE scaling × KV-cache
        strategy (asks which when not given; no strategies: the sweep panel's);
        ``cluster``: on that Ray cluster, in parallel."""
        spec = self.model_panel.spec()
        if dtypes is None or kernels is None:
            from ctxscope.gui.matrix_dialog import MatrixDialog

            combo = self.model_panel.attn
            names = [combo.itemText(i) for i in range(combo.count()) if combo.itemData(i)]
            dialog = MatrixDialog(names, current_kernel=spec.attn_implementation, current_dtype=spec.dtype,
                                  current_cache=self.sweep_panel.cache.strategy(), parent=parent)
            if not dialog.exec():
                return False
            dtypes, kernels = dialog.choice()
            cluster, ropes, caches = dialog.cluster(), dialog.ropes(), dialog.cache_choice()
        try:
            cfg = self.sweep_panel.config()
        except CtxscopeError as exc:
            self.sweep_panel.show_error(str(exc))
            return False
        if not self.runner.run_matrix(spec, cfg, tuple(dtypes), tuple(kernels) or (None,), cluster=cluster,
                                      ropes=ropes, caches=caches):
            self.feedback.status("A sweep is already running: cancel it first (Esc).")
            return False
        self.tabs.setCurrentIndex(0)
        return True

    def _on_runner_matrix_finished(self, run_ids: tuple[str, ...]) -> None:
        if run_ids:
            self.pending = run_ids  # ticked once the history lists them
            self.refresh_history()
            self.tabs.setCurrentWidget(self.compare)
            self.feedback.status(f"Matrix done: {plural(len(run_ids), 'run')} compared.")

    def history_listed(self, runs: list[Any]) -> None:
        """Tick the matrix's runs once the history lists every one of them (an earlier
        listing, made after the first cell, would order them newest first)."""
        if self.pending and set(self.pending) <= {r.id for r in runs}:
            self.compare.tick(self.pending)
            self.pending = ()


class MaxContextController(QObject):
    """Run → Find max context: trials drawn on the memory plot as they finish, the
    answer above the plots."""

    def __init__(self, runner: SweepRunner, model_panel: ModelPanel, live: LiveView, tabs: QTabWidget,
                 feedback: Feedback) -> None:
        super().__init__(runner)
        self.runner, self.model_panel, self.live, self.tabs, self.feedback = runner, model_panel, live, tabs, feedback
        self.trials: list[Any] = []
        self.budget: int | None = None
        runner.trialDone.connect(self._on_runner_trial_done)
        runner.maxContextFound.connect(self._on_runner_max_context_found)

    def run(self, mode: str | None = None, budget: int | None = None, granularity: int | None = None, *,
            ask: bool = True, parent: QWidget | None = None) -> bool:
        spec = self.model_panel.spec()
        if ask:
            from ctxscope.gui.maxctx_dialog import MaxContextDialog

            on_gpu = spec.device.startswith("cuda") or (spec.device == "auto" and self.model_panel.has_gpu())
            dialog = MaxContextDialog(on_gpu=on_gpu, parent=parent)
            if not dialog.exec():
                return False
            mode, budget, granularity = dialog.mode.currentText(), dialog.budget_bytes(), dialog.granularity.value()
        self.trials, self.budget = [], budget
        if not self.runner.find_max_context(spec, mode=mode, budget=budget, granularity=granularity or 256):
            self.feedback.status("Busy: wait for the current job or cancel it.")
            return False
        self.live.clear()
        self.live.memory_mode.setCurrentText(mode or "prefill")
        self.tabs.setCurrentIndex(0)
        self.live.say(f"Finding the longest {mode or 'prefill'} context of {spec.source} …")
        return True

    def _on_runner_trial_done(self, trial: Any) -> None:
        self.trials.append(trial)
        self.live.memory.show_trials(self.trials, self.budget)
        peak = f", peak {fmt_bytes(trial.peak_bytes)}" if trial.peak_bytes is not None else ""
        self.feedback.status(f"Trial {len(self.trials)}: L={trial.length:,} {trial.status}{peak}")

    def _on_runner_max_context_found(self, result: Any) -> None:
        self.live.memory.show_trials(list(result.trials), result.budget_bytes)
        summary = result.summary()
        text = summary[:1].upper() + summary[1:] + "."
        self.live.say(text)
        self.feedback.status(text)


class ExportController(QObject):
    """Reports written by a worker thread (charts take seconds; the UI goes on)."""

    written = Signal(str)  # the path, once a report is on disk

    def __init__(self, feedback: Feedback, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.feedback = feedback
        self._worker: Any = None

    @property
    def exporting(self) -> bool:
        return self._worker is not None

    def export(self, entries: list[tuple[Any, Path | None]], path: str | None, baseline: int = 0,
               parent: QWidget | None = None) -> str | None:
        """Write ``entries`` as HTML / Markdown / JSON / CSV by the file's suffix;
        returns the path at once (``exporting`` is True until written)."""
        from ctxscope.gui.export import export_runs

        if not path:
            path, _ = QFileDialog.getSaveFileName(
                parent, "Export report", "ctxscope-report.html",
                "HTML report (*.html);;Markdown summary (*.md);;Run JSON (*.json);;CSV points (*.csv)")
            if not path:
                return None
        if self._worker is not None:
            self.feedback.status("An export is still being written: wait for it.")
            return None
        self.feedback.status(f"Writing {path} … (the app stays usable)")
        target, count = Path(path), len(entries)

        def work() -> tuple[str, str, int]:
            try:
                export_runs(entries, target, baseline=baseline)
                return str(target), "", count
            except (CtxscopeError, OSError) as exc:
                return str(target), str(exc), count
            except Exception as exc:  # a bug reaches the user as a message, never silently
                return str(target), f"{type(exc).__name__}: {exc}", count

        worker = create_worker(work, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_worker_returned)  # a bound method: runs in the UI thread
        self._worker = worker
        worker.start()
        return path

    def _on_worker_returned(self, result: tuple[str, str, int]) -> None:
        path, error, count = result
        self._worker = None
        if error:
            self.feedback.error(f"Export failed: {error}")
        else:
            self.feedback.status(f"Wrote {path} ({count} run{'s' if count > 1 else ''}).")
            self.written.emit(path)

    def copy_plot(self, plot: Any) -> None:
        """The plot on the clipboard as an image and as SVG."""
        from ctxscope.gui.export import copy_plot

        copy_plot(plot)
        self.feedback.status("Plot copied (image and SVG).")

    def save_plot(self, plot: Any, path: str | None = None, parent: QWidget | None = None) -> str | None:
        """The plot as PNG or SVG (by the suffix); asks for the file without ``path``."""
        from ctxscope.gui.export import save_plot

        if not path:
            path, _ = QFileDialog.getSaveFileName(parent, "Save plot", "ctxscope-plot.png",
                                                  "PNG image (*.png);;SVG vector (*.svg)")
            if not path:
                return None
        try:
            save_plot(plot, Path(path))
        except OSError as exc:
            self.feedback.error(f"Cannot save the plot: {exc}")
            return None
        self.feedback.status(f"Saved {path}.")
        return path
