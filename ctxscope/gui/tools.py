"""The main window's tools beyond a single sweep: the kernel × dtype matrix, the
max-context search, analytic overlays, report export and plot export. A mixin of
:class:`~ctxscope.gui.main_window.MainWindow` (it uses the window's panels, plots and
runner), kept apart so each file stays readable."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from ctxscope.core.errors import CtxscopeError
from ctxscope.core.results import RunHeader, RunResult


class ToolsMixin:
    def run_matrix(self, dtypes: tuple[str, ...] | None = None, kernels: tuple[str, ...] | None = None) -> bool:
        """Sweep the panel's model for every dtype × kernel (asks which when not given)."""
        spec = self.model_panel.spec()
        if dtypes is None or kernels is None:
            from ctxscope.gui.matrix_dialog import MatrixDialog

            combo = self.model_panel.attn
            names = [combo.itemText(i) for i in range(combo.count()) if combo.itemData(i)]
            dialog = MatrixDialog(names, current_kernel=spec.attn_implementation, current_dtype=spec.dtype, parent=self)
            if not dialog.exec():
                return False
            dtypes, kernels = dialog.choice()
        try:
            cfg = self.sweep_panel.config()
        except CtxscopeError as exc:
            self.sweep_panel.show_error(str(exc))
            return False
        self.error_box.setVisible(False)
        if not self.runner.run_matrix(spec, cfg, tuple(dtypes), tuple(kernels) or (None,)):
            self.status_label.setText("A sweep is already running: cancel it first (Esc).")
            return False
        self.tabs.setCurrentIndex(0)
        return True

    def _on_runner_matrix_finished(self, run_ids: tuple[str, ...]) -> None:
        self.refresh_history()
        if run_ids:
            self.compare.tick(run_ids)
            self.tabs.setCurrentWidget(self.compare)
            self.status_label.setText(f"Matrix done: {len(run_ids)} runs compared.")

    def _on_history_compare_requested(self, run_ids: list[str]) -> None:
        self.compare.tick(run_ids)
        self.tabs.setCurrentWidget(self.compare)

    def find_max_context(self, mode: str | None = None, budget: int | None = None, granularity: int | None = None,
                         *, ask: bool = True) -> bool:
        """Search the longest context of the panel's model; probes are drawn on the
        memory plot as they finish, the answer is shown above the plots."""
        spec = self.model_panel.spec()
        if ask:
            from ctxscope.gui.maxctx_dialog import MaxContextDialog

            on_gpu = spec.device.startswith("cuda") or (spec.device == "auto" and self.model_panel.has_gpu())
            dialog = MaxContextDialog(on_gpu=on_gpu, parent=self)
            if not dialog.exec():
                return False
            mode, budget, granularity = dialog.mode.currentText(), dialog.budget_bytes(), dialog.granularity.value()
        self.error_box.setVisible(False)
        self._probes: list = []
        self._probe_budget = budget
        if not self.runner.find_max_context(spec, mode=mode, budget=budget, granularity=granularity or 256):
            self.status_label.setText("Busy: wait for the current job or cancel it.")
            return False
        self._clear_views()
        self.memory_mode.setCurrentText(mode or "prefill")
        self.tabs.setCurrentIndex(0)
        self.live_hint.setText(f"Finding the longest {mode or 'prefill'} context of {spec.source} …")
        self.live_hint.setVisible(True)
        return True

    def _on_runner_probe_done(self, probe) -> None:
        self._probes.append(probe)
        self.memory.show_probes(self._probes, self._probe_budget)
        peak = f", peak {probe.peak_bytes / 2**30:.2f} GiB" if probe.peak_bytes is not None else ""
        self.status_label.setText(f"Probe {len(self._probes)}: L={probe.length:,} {probe.status}{peak}")

    def _on_runner_max_context_found(self, result) -> None:
        self.memory.show_probes(list(result.probes), result.budget_bytes)
        if result.largest_fit is None:
            answer = "none: even the smallest probe did not fit"
        elif result.stopped_at_limit:
            answer = f"{result.largest_fit:,} tokens (the model's maximum positions; nothing longer tried)"
        else:
            answer = f"{result.largest_fit:,} tokens (fails at {result.smallest_fail:,}; within {result.granularity})"
        bound = f"; analytic upper bound (weights + KV only) {result.predicted:,}" if result.predicted else ""
        text = (f"Longest {result.mode} that runs within {result.budget_bytes / 2**30:.2f} GiB: {answer}{bound}. "
                f"{len(result.probes)} probes.")
        self.live_hint.setText(text)
        self.live_hint.setVisible(True)
        self.status_label.setText(text)

    def _show_predictions(self, header: RunHeader) -> None:
        """The first run's analytic predictions: roofline latency per mode, weights + KV."""
        from ctxscope.core.efficiency import predicted_latency, predicted_memory

        memory = predicted_memory(header)
        if not memory:
            return
        for mode in header.settings.modes:
            latency = predicted_latency(header, mode)
            self.latency.set_prediction(mode, list(latency), list(latency.values()))
        self.memory.set_prediction(list(memory), list(memory.values()))

    def _show_fits(self, run: RunResult) -> None:
        from ctxscope.core.efficiency import fit_run

        for mode in run.header.settings.modes:
            self.latency.set_fit(mode, fit_run(run, mode), [p.length for p in run.ok_points(mode)])

    def export_report(self, path: str | None = None, *, comparison: bool | None = None) -> str | None:
        """Write the Compare tab's runs (when it is showing, or ``comparison``) or the
        runs in Live as HTML / Markdown / JSON / CSV, by the file's suffix, from a
        worker thread; returns the path at once (``exporting`` is True until written)."""
        if comparison is None:
            comparison = self.tabs.currentWidget() is self.compare
        entries = self.compare.selected_runs() if comparison else list(self.shown_runs.values())
        if not entries:
            self.show_error("Nothing to export: " + ("tick runs in the Compare tab." if comparison
                                                     else "run a sweep or open a run first."))
            return None
        if not path:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export report", "ctxscope-report.html",
                "HTML report (*.html);;Markdown summary (*.md);;Run JSON (*.json);;CSV points (*.csv)")
            if not path:
                return None
        if self.exporting:
            self.status_label.setText("An export is still being written: wait for it.")
            return None
        from ctxscope.gui.export import ExportJob

        baseline = max(0, self.compare.baseline.currentIndex()) if comparison else 0
        self.status_label.setText(f"Writing {path} … (the app stays usable)")
        # Rendering charts takes seconds: a worker thread writes the file, the UI goes on.
        self.exporting = True
        self._export_job = ExportJob(entries, Path(path), baseline, parent=self)
        self._export_job.finished.connect(self._on_export_finished)
        self._export_job.start()
        return path

    def _on_export_finished(self, path: str, error: str, count: int) -> None:
        self.exporting = False
        if error:
            self.show_error(f"Export failed: {error}")
        else:
            self.status_label.setText(f"Wrote {path} ({count} run{'s' if count > 1 else ''}).")

    def copy_plot(self, plot) -> None:
        from ctxscope.gui.export import copy_plot

        copy_plot(plot)
        self.status_label.setText("Plot copied (image and SVG).")

    def save_plot(self, plot, path: str | None = None) -> str | None:
        from ctxscope.gui.export import save_plot

        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Save plot", "ctxscope-plot.png",
                                                  "PNG image (*.png);;SVG vector (*.svg)")
            if not path:
                return None
        try:
            save_plot(plot, Path(path))
        except OSError as exc:
            self.show_error(f"Cannot save the plot: {exc}")
            return None
        self.status_label.setText(f"Saved {path}.")
        return path
