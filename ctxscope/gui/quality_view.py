"""The Quality tab: what context buys, filling in live as the quality passes of a sweep
report — loss vs context with its interval band, the needle grid with both controls,
the trade-off with the knee, and *claimed · fits · effective* in one line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QHeaderView, QLabel, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)
from PySide6.QtCore import Qt

from ctxscope.core.quality.effective import (Effective, by_length, effective_of, loss_rows, needle_grid, pool,
                                             savings, tasks_of)
from ctxscope.core.quality.texts import MEMORISED_NOTE
from ctxscope.core.quality.verdicts import steps
from ctxscope.core.quality.records import NeedleTrial, QualityPoint, QualityResult
from ctxscope.core.results import Point, RunHeader, RunResult
from ctxscope.core.spec import ModelSpec
from ctxscope.gui.quality_plots import LossPlot, TradeoffPlot
from ctxscope.report.tradeoff import tradeoff
from ctxscope.core.units import plural

if TYPE_CHECKING:  # the runner imports the core; the view only connects to its signals
    from ctxscope.gui.runner import SweepRunner

HINT = ("No quality results yet. Tick “Measure what context buys” in the Sweep panel and run a real (not random-"
        "weights) decoder: loss vs context and needle retrieval are measured after each length's timed points, "
        "untimed. Or open a run that has them.")


def _rate_colour(rate: float | None) -> QColor:
    if rate is None:
        return QColor(230, 230, 230)
    # red (0) → yellow (0.5) → green (1), light enough for black text
    r = 255 if rate < 0.5 else int(255 - (rate - 0.5) * 2 * 120)
    g = int(150 + rate * 2 * 80) if rate < 0.5 else 230
    return QColor(r, g, 140)


class QualityView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header: RunHeader | None = None
        self.result = QualityResult()
        self.points: list[Point] = []
        self.effective: Effective | None = None
        self._fits: dict[tuple[str, str, str], int] = {}
        self.hint = QLabel(HINT, wordWrap=True)
        self.hint.setStyleSheet("background: palette(alternate-base); padding: 6px; border-radius: 3px;")
        self.summary = QLabel(wordWrap=True)
        self.summary.setStyleSheet("font-weight: 600; padding: 2px;")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QLabel(wordWrap=True)
        self.details.setStyleSheet("color: palette(placeholder-text);")
        self.loss_plot = LossPlot()
        self.saving = QLabel(wordWrap=True)
        self.tradeoff_plot = TradeoffPlot()
        self.needle = QTableWidget(0, 0)
        self.needle.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.controls = QLabel(wordWrap=True)
        self.task = QComboBox()  # which retrieval task the grid shows (a run may measure several)
        self.task.setToolTip("single: one key; multikey: distractor needles of the same form; multivalue: several "
                             "values for one key; multiquery: several keys asked at once; vt: variable tracking")
        self.task.currentIndexChanged.connect(lambda _: self._fill_needle())
        needle_box = QWidget()
        needle_layout = QVBoxLayout(needle_box)
        needle_layout.setContentsMargins(0, 0, 0, 0)
        heading = QHBoxLayout()
        heading.addWidget(QLabel("Needle retrieval: found / trials by depth (rows) and length (columns)"), 1)
        heading.addWidget(self.task)
        needle_layout.addLayout(heading)
        needle_layout.addWidget(self.needle, 1)
        needle_layout.addWidget(self.controls)
        loss_box = QWidget()
        loss_layout = QVBoxLayout(loss_box)
        loss_layout.setContentsMargins(0, 0, 0, 0)
        loss_layout.addWidget(self.loss_plot, 1)
        loss_layout.addWidget(self.saving)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(loss_box)
        top.addWidget(needle_box)
        top.setSizes([1200, 800])
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        self.needle.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.content = QSplitter(Qt.Orientation.Vertical)
        self.content.addWidget(top)
        self.content.addWidget(self.tradeoff_plot)
        layout = QVBoxLayout(self)
        layout.addWidget(self.hint)
        layout.addWidget(self.summary)
        layout.addWidget(self.details)
        layout.addWidget(self.content, 1)
        self.clear()

    # -- fed by the window -------------------------------------------------------------
    def clear(self) -> None:
        self.header, self.result, self.points, self.effective = None, QualityResult(), [], None
        self.summary.setText("")
        self.details.setText("")
        self.hint.setVisible(True)
        self.content.setVisible(False)
        self._redraw()

    def begin_run(self, header: RunHeader) -> None:
        self.clear()
        settings = header.settings.quality
        if settings is None:
            return
        self.header = header
        self.hint.setVisible(False)
        if settings.get("note"):
            self.summary.setText(settings["note"])  # said once: quality does not apply to this model
            return
        self.content.setVisible(True)
        self.details.setText(f"{settings.get('text')} ({settings.get('text_tokens') or 0:,} tokens) · loss: "
                             f"{settings.get('windows')} windows × {settings.get('target_tokens')} target tokens · "
                             f"needle: {', '.join(settings.get('tasks') or ['single'])} at depths "
                             f"{', '.join(f'{d:g}%' for d in settings.get('depths', []))}, "
                             f"{plural(int(settings.get('seeds') or 0), 'trial')} each · untimed passes"
                             + (f"\nNote: {settings.get('text')} is {MEMORISED_NOTE}." if settings.get("text_shipped")
                                else ""))
        self._redraw()

    def add_quality(self, event: QualityPoint) -> None:
        if self.header is None:
            return
        self.result = self.result.add(event.item)
        self._redraw()

    def add_point(self, point: Point) -> None:
        if self.header is not None and self.header.settings.quality is not None:
            self.points.append(point)
            self._redraw()

    def finish_run(self, run: RunResult) -> None:
        """The run as stored (also for a run opened from the history or a file)."""
        self.begin_run(run.header)
        if run.quality is not None and self.header is not None:
            self.result, self.points = run.quality, list(run.points)
            self._redraw()

    show_run = finish_run

    def follow(self, runner: SweepRunner, current_spec: Callable[[], ModelSpec]) -> None:
        """Fill in from ``runner``'s sweeps; remember its max-context answers for the
        model ``current_spec()`` names (what "fits" means for a later sweep of it)."""
        for signal, slot in ((runner.sweepStarted, self.begin_run), (runner.qualityReady, self.add_quality),
                             (runner.pointReady, self.add_point), (runner.pointFailed, self.add_point),
                             (runner.sweepFinished, self.finish_run)):
            signal.connect(slot)
        runner.maxContextFound.connect(lambda found: self.remember_fit(current_spec(), found.largest_fit))

    # -- what fits on this device (from the app's Find max context) -------------------
    def remember_fit(self, spec: ModelSpec, largest_fit: int | None) -> None:
        if largest_fit:
            self._fits[(spec.source, spec.device, spec.dtype)] = largest_fit

    def with_fit(self, spec: ModelSpec, cfg: Any) -> Any:
        """``cfg`` with ``quality.fits`` filled from a max-context search of this model on
        this device in this session (when the sweep asked for quality and gave none)."""
        fit = self._fits.get((spec.source, spec.device, spec.dtype))
        if cfg.quality is None or cfg.quality.fits is not None or fit is None:
            return cfg
        return replace(cfg, quality=replace(cfg.quality, fits=fit))

    # -- drawing -------------------------------------------------------------------------
    def _redraw(self) -> None:
        settings = self.header.settings.quality if self.header is not None else None
        rows = loss_rows(self.result.loss)
        self.loss_plot.set_rows(rows)
        saved = savings(self.result.loss)
        epsilon = float((settings or {}).get("epsilon", 0.01))
        walk = steps(self.result.loss, epsilon)
        self.saving.setText(("Loss saved vs the shortest context, paired by window (95 %): " + ", ".join(
            f"{s.context:,}: {s.mean:+.4f}" + (f" ({s.low:+.3f} – {s.high:+.3f})" if s.low is not None else "")
            for s in saved) if saved else "") + ("\nEach step, per doubling (95 %): " + ", ".join(
                f"{st.start:,}→{st.end:,} {st.saving.mean:+.4f}" + (
                    f" ({st.saving.ci95[0]:+.3f} – {st.saving.ci95[1]:+.3f})" if st.saving.ci95 else "")
                + f" {st.verdict}" for st in walk) if walk else ""))
        if settings is None or settings.get("note"):
            self._fill_needle()
            self.tradeoff_plot.set_data(tradeoff(self._run()) if self.header else _empty(), None)
            return
        self.effective = effective_of(self.result, settings)
        self._fill_needle()
        result = tradeoff(self._run())
        self.tradeoff_plot.set_data(result, self.effective, rows)
        self.summary.setText(self.effective.line())
        self.tradeoff_plot.setToolTip(result.knee_text())

    def _run(self) -> RunResult:
        assert self.header is not None
        return RunResult(header=self.header, status="running", points=tuple(self.points), quality=self.result)

    def _sync_tasks(self, tasks: list[str]) -> str:
        """The task selector lists the run's tasks (kept on the user's choice)."""
        current = self.task.currentText()
        if [self.task.itemText(i) for i in range(self.task.count())] != tasks:
            self.task.blockSignals(True)
            self.task.clear()
            self.task.addItems(tasks)
            self.task.setCurrentIndex(max(0, tasks.index(current)) if current in tasks else 0)
            self.task.blockSignals(False)
        self.task.setVisible(len(tasks) > 1)
        return self.task.currentText() or "single"

    def _fill_needle(self) -> None:
        trials = self.result.needle
        task = self._sync_tasks(tasks_of(trials) or ["single"])
        lengths, depths, cells = needle_grid(trials, task)
        extra: list[tuple[str, dict[int, Any], str]] = []
        if task == "single":
            extra.append(("no key (chance)", by_length(trials, "no-key"), "no-key"))
        if task == "multikey":
            extra.append(("wrong key: value returned", by_length(trials, "wrong-key"), "wrong-key"))
        extra = [e for e in extra if e[1]]
        table = self.needle
        table.clear()
        table.setRowCount(len(depths) + 1 + len(extra))
        table.setColumnCount(len(lengths))
        table.setHorizontalHeaderLabels([f"{n:,}" for n in lengths])
        table.setVerticalHeaderLabels([f"{d:g}%" for d in depths] + ["all depths (95 %)"] + [e[0] for e in extra])
        overall = by_length(trials, task=task)
        for j, n in enumerate(lengths):
            for i, d in enumerate(depths):
                table.setItem(i, j, _cell(cells[(n, d)], [t for t in trials if t.kind == "grid" and t.length == n
                                                          and t.depth == d and t.task == task]))
            if n in overall:
                table.setItem(len(depths), j, _cell(overall[n], [], interval=True))
            for k, (_, cells_of, kind) in enumerate(extra):
                if n in cells_of:
                    table.setItem(len(depths) + 1 + k, j, _cell(
                        cells_of[n], [t for t in trials if t.kind == kind and t.length == n],
                        false=kind == "wrong-key"))
        lines = []
        adjacent = pool([t for t in trials if t.kind == "adjacent" and t.task == task])
        if adjacent.n:
            what = "key" if task == "single" else f"{task} needles"
            lines.append(f"Control, {what} right before the question (no haystack): {adjacent.found}/{adjacent.n} found"
                         + (f", mean log p(key) {adjacent.logprob:.2f}" if adjacent.logprob is not None else ""))
        if self.effective is not None:
            lines += [v.text for _, v in self.effective.tasks]
        self.controls.setText("\n".join(lines))


def _said(t: NeedleTrial) -> str:
    if t.status != "ok":
        return f"key {t.key}: {t.status} — {t.error}"
    if t.task == "single":
        logp = f" (log p {t.key_logprob:.2f})" if t.key_logprob is not None else ""
        return f"key {t.key}: {'found' if t.found else repr(t.answer)}{logp}"
    return f"{t.key}: said {(t.answer or '').strip()!r}" + (f", recall {t.recall:.0%}" if t.recall is not None else "") \
        + (f", {t.false_hits} distractor(s)" if t.false_hits else "")


def _cell(cell: Any, trials: list[NeedleTrial], *, interval: bool = False, false: bool = False) -> QTableWidgetItem:
    count = cell.false if false else cell.found
    text = f"{count}/{cell.n}" + (f" (+{cell.failed} not run)" if cell.failed else "")
    ci = cell.interval
    if interval and ci is not None:
        text += f" · {ci[0]:.0%}–{ci[1]:.0%}"
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
    # A false retrieval is bad: its colour runs the other way.
    item.setBackground(_rate_colour(None if cell.rate is None else (1 - count / cell.n if false else cell.rate)))
    item.setForeground(QColor(0, 0, 0))
    said = "; ".join(_said(t) for t in trials)
    item.setToolTip(said + (f"\nmean log p(key) {cell.logprob:.2f}" if cell.logprob is not None else "")
                    + (f"\n95 % Wilson interval {ci[0]:.0%}–{ci[1]:.0%}" if ci is not None else ""))
    return item


def _empty() -> Any:
    from ctxscope.report.tradeoff import Tradeoff

    return Tradeoff((), None, "prefill latency")

