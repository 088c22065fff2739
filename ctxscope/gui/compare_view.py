"""The Compare tab: tick runs (from the history or run files), pick a baseline, and see
their curves overlaid, the ratio to the baseline, peak memory, a table of ratios and
attention maps side by side at a length they all captured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ctxscope.core.errors import CtxscopeError
from ctxscope.core.results import RunResult
from ctxscope.gui.axes import LengthAxis, LogValueAxis
from ctxscope.gui.quality_compare import QualityCompare
from ctxscope.report.charts import PALETTE
from ctxscope.report.compare import Comparison, compare, fmt_ratio, peak_heading
from ctxscope.report.fmt import fmt_bytes, fmt_ms
from ctxscope.core.units import GIB

EMPTY_TEXT = ("Tick two or more runs to compare them: runs from the History tab are listed here,\n"
              "“Add run file…” opens runs measured elsewhere, and Run → Compare kernels and dtypes…\n"
              "measures a matrix in one go.")


def _plot(y_label: str, *, log_y: bool) -> pg.PlotWidget:
    plot = pg.PlotWidget(axisItems={"bottom": LengthAxis("bottom"), "left": LogValueAxis("left")})
    plot.setLogMode(x=True, y=log_y)
    plot.setLabel("bottom", "context length L", units="tokens")
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.getAxis("left").enableAutoSIPrefix(False)  # GiB stays GiB, not "(x0.001)"
    plot.getAxis("bottom").enableAutoSIPrefix(False)  # ticks read 1k, 4k: the label must not say "ktokens"
    plot.addLegend(offset=(8, 8))
    return plot


class CompareView(QWidget):
    addFileRequested = Signal()
    exportRequested = Signal()
    runsNeeded = Signal(object)  # list of stored run ids to read (off the UI thread): add_loaded() brings them

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cache: dict[str, tuple[RunResult, Path | None]] = {}  # run id → (run, its attention .npz)
        self._asked: set[str] = set()
        self.comparison: Comparison | None = None
        self.runs_list = QListWidget()
        self.runs_list.setWordWrap(True)  # labels are long (model · device dtype kernel · time): wrap, never cut
        self.runs_list.itemChanged.connect(lambda _: self.refresh())
        add_file = QPushButton("Add run file…")
        add_file.clicked.connect(self.addFileRequested)
        self.export_button = QPushButton("Export report…")
        self.export_button.clicked.connect(self.exportRequested)
        self.baseline = QComboBox()
        self.baseline.currentIndexChanged.connect(lambda _: self._redraw())
        self.mode = QComboBox()
        self.mode.currentIndexChanged.connect(lambda _: self._redraw())
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(QLabel("Runs (tick to compare)"))
        side_layout.addWidget(self.runs_list, 1)
        side_layout.addWidget(add_file)
        side_layout.addWidget(QLabel("Baseline"))
        side_layout.addWidget(self.baseline)
        side_layout.addWidget(QLabel("Mode"))
        side_layout.addWidget(self.mode)
        side_layout.addWidget(self.export_button)

        self.latency = _plot("median latency (ms)", log_y=True)
        self.ratio = _plot("ratio", log_y=False)
        self.memory = _plot("peak memory (GiB)", log_y=False)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: palette(placeholder-text);")
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.maps = pg.GraphicsLayoutWidget()
        self.maps_label = QLabel()
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.latency)
        top.addWidget(self.memory)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.ratio)
        bottom.addWidget(self.table)
        for split in (top, bottom):
            split.setStretchFactor(0, 1)
            split.setStretchFactor(1, 1)
            split.setSizes([1000, 1000])  # equal halves (the size hints would starve the table)
        self.content = QWidget()
        content_layout = QVBoxLayout(self.content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.addWidget(self.notes)
        # KV-cache strategies against the default cache: the one line per strategy that answers
        # "how much longer, at what cost, with what harm" (hidden when no run differs by its cache).
        self.kv = QLabel()
        self.kv.setWordWrap(True)
        self.kv.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        content_layout.addWidget(self.kv)
        content_layout.addWidget(top, 3)
        content_layout.addWidget(bottom, 2)
        self.quality = QualityCompare()  # shown when a ticked run measured what context buys
        content_layout.addWidget(self.quality, 2)
        content_layout.addWidget(self.maps_label)
        content_layout.addWidget(self.maps, 2)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.empty)
        right_layout.addWidget(self.content, 1)
        layout = QHBoxLayout(self)
        splitter = QSplitter()
        splitter.addWidget(side)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([360, 1000])  # room to tell runs apart
        layout.addWidget(splitter)
        self._set_empty(True)

    # -- runs ----------------------------------------------------------------------------
    def set_available(self, runs: list) -> None:
        """The history's runs (RunSummary): new ones join at the top, newest first; the
        runs already listed keep their place and ticks (the order is the baseline's),
        deleted ones leave; runs from files stay."""
        ticked = set(self.checked_ids())
        # History runs are read again (one may have finished since); file runs stay.
        self.cache = {k: v for k, v in self.cache.items() if k in self._file_ids()}
        listed = [(self.runs_list.item(i).data(Qt.ItemDataRole.UserRole), self.runs_list.item(i).text(),
                   bool(self.runs_list.item(i).data(Qt.ItemDataRole.UserRole + 1)))
                  for i in range(self.runs_list.count())]
        stored = {r.id for r in runs}
        known = {run_id for run_id, _, _ in listed}
        fresh = [(r.id, f"{r.model_source} · {r.device} {r.dtype} {r.attn} · {r.created[:16].replace('T', ' ')}", False)
                 for r in reversed(runs) if r.id not in known]
        self.runs_list.blockSignals(True)
        self.runs_list.clear()
        for run_id, text, from_file in fresh + [e for e in listed if e[2] or e[0] in stored]:
            self._add_item(run_id, text, run_id in ticked, from_file=from_file)
        self.runs_list.blockSignals(False)
        self.refresh()

    def _file_ids(self) -> set[str]:
        return {self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.runs_list.count())
                if self.runs_list.item(i).data(Qt.ItemDataRole.UserRole + 1)}

    def _add_item(self, run_id: str, text: str, checked: bool, *, from_file: bool) -> None:
        item = QListWidgetItem(text)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        item.setData(Qt.ItemDataRole.UserRole, run_id)
        item.setData(Qt.ItemDataRole.UserRole + 1, from_file)
        item.setToolTip(f"{text}\n{run_id}")
        self.runs_list.addItem(item)

    def add_file_run(self, run: RunResult, maps: Path | None) -> None:
        """A run opened from a file: listed first and ticked."""
        self.cache[run.id] = (run, maps)
        for i in range(self.runs_list.count()):
            if self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) == run.id:
                self.runs_list.item(i).setCheckState(Qt.CheckState.Checked)
                return
        s = run.header.settings
        self._add_item(run.id, f"{run.header.model.source} · {s.device} {s.dtype} {s.attn_implementation} · file",
                       True, from_file=True)
        self.refresh()

    def tick(self, run_ids: list[str] | tuple[str, ...], *, only: bool = True) -> None:
        """Tick ``run_ids`` (and untick the rest when ``only``); they move to the top in
        the order given, so the first is the baseline (a matrix: the first measured)."""
        self.runs_list.blockSignals(True)
        for run_id in reversed(list(run_ids)):
            for i in range(self.runs_list.count()):
                if self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) == run_id:
                    self.runs_list.insertItem(0, self.runs_list.takeItem(i))
                    break
        for i in range(self.runs_list.count()):
            item = self.runs_list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) in run_ids:
                item.setCheckState(Qt.CheckState.Checked)
            elif only:
                item.setCheckState(Qt.CheckState.Unchecked)
        self.runs_list.blockSignals(False)
        self.refresh()

    def checked_ids(self) -> list[str]:
        return [self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.runs_list.count())
                if self.runs_list.item(i).checkState() == Qt.CheckState.Checked]

    def selected_runs(self) -> list[tuple[RunResult, Path | None]]:
        """The ticked runs read so far; the others are asked for (``runsNeeded``) and
        drawn when :meth:`add_loaded` brings them."""
        missing = [i for i in self.checked_ids() if i not in self.cache and i not in self._asked]
        if missing:
            self._asked.update(missing)
            self.runsNeeded.emit(missing)
        return [self.cache[i] for i in self.checked_ids() if i in self.cache]

    def add_loaded(self, runs: list[tuple[RunResult, Path | None]]) -> None:
        """Stored runs read by the history (a worker thread): draw them."""
        for run, maps in runs:
            self.cache[run.id] = (run, maps)
            self._asked.discard(run.id)
        self.refresh()

    def load_failed(self, message: str) -> None:
        self._asked.clear()
        self.notes.setText(f"runs unavailable: {message}")

    # -- drawing -------------------------------------------------------------------------
    def refresh(self) -> None:
        runs = [r for r, _ in self.selected_runs()]
        if not runs:
            self.comparison = None
            self._set_empty(True)
            return
        base_id = self.baseline.currentData()
        self.comparison = compare(runs)
        self.baseline.blockSignals(True)
        self.baseline.clear()
        for run, label in zip(self.comparison.runs, self.comparison.labels):
            self.baseline.addItem(label, run.id)
        index = self.baseline.findData(base_id)
        self.baseline.setCurrentIndex(max(0, index))
        self.baseline.blockSignals(False)
        mode = self.mode.currentText()
        self.mode.blockSignals(True)
        self.mode.clear()
        self.mode.addItems(list(self.comparison.modes))
        if mode in self.comparison.modes:
            self.mode.setCurrentText(mode)
        self.mode.blockSignals(False)
        self._set_empty(False)
        self._redraw()

    def _set_empty(self, empty: bool) -> None:
        self.empty.setVisible(empty)
        self.content.setVisible(not empty)
        self.export_button.setEnabled(not empty)

    def _redraw(self) -> None:
        if self.comparison is None:
            return
        runs = list(self.comparison.runs)
        self.comparison = cmp = compare(runs, max(0, self.baseline.currentIndex()))
        mode = self.mode.currentText() or (cmp.modes[0] if cmp.modes else "")
        for plot in (self.latency, self.ratio, self.memory):
            plot.clear()
        rows = cmp.rows_of(mode)
        for i, label in enumerate(cmp.labels):
            pen = pg.mkPen(PALETTE[i % len(PALETTE)], width=2)
            ok = [(r.length, r.cells[i]) for r in rows if r.cells[i].median_ms is not None]
            if ok:
                x = np.array([n for n, _ in ok], dtype=float)
                self.latency.plot(x, [c.median_ms for _, c in ok], pen=pen, symbol="o", symbolSize=5,
                                  symbolBrush=PALETTE[i % len(PALETTE)], name=label)
                peaks = [(n, c.peak_bytes / GIB) for n, c in ok if c.peak_bytes is not None]
                if peaks:
                    self.memory.plot([n for n, _ in peaks], [v for _, v in peaks], pen=pen, symbol="o",
                                     symbolSize=5, symbolBrush=PALETTE[i % len(PALETTE)], name=label)
                ratios = [(n, c.latency_ratio) for n, c in ok if c.latency_ratio is not None]
                if ratios and i != cmp.baseline:
                    self.ratio.plot([n for n, _ in ratios], [v for _, v in ratios], pen=pen, symbol="o",
                                    symbolSize=5, symbolBrush=PALETTE[i % len(PALETTE)], name=label)
        peaks = [c.peak_bytes for r in rows for c in r.cells if c.peak_bytes is not None]
        if peaks:  # from zero: small differences should look small
            self.memory.setYRange(0, max(peaks) / GIB * 1.1, padding=0)
        self.ratio.addItem(pg.InfiniteLine(1.0, angle=0, pen=pg.mkPen((128, 128, 128), style=Qt.PenStyle.DashLine)))
        # The baseline's name goes in the title: a long label on the short rotated axis was cut.
        self.ratio.setTitle(f"latency ÷ {cmp.labels[cmp.baseline]}", size="9pt")
        self.memory.setLabel("left", f"{peak_heading(cmp.runs)} (GiB)")
        self._fill_table(cmp, mode)
        self.quality.set_runs(cmp.runs, cmp.labels, cmp.baseline)
        notes = [f"{label}: longest {mode} that ran {cmp.max_ok[i].get(mode) or 'none'}"
                 + (f", out of memory from {cmp.first_oom[i][mode]}" if cmp.first_oom[i].get(mode) else "")
                 for i, label in enumerate(cmp.labels)]
        self.notes.setText(" · ".join(notes) + ("\n⚠ " + "; ".join(cmp.differences) if cmp.differences else ""))
        from ctxscope.report.kv_view import summary_lines

        kv = summary_lines(cmp.runs)
        self.kv.setText("\n".join(f"KV strategy — {line}" for line in kv))
        self.kv.setVisible(bool(kv))
        self._draw_maps(cmp)

    def _fill_table(self, cmp: Comparison, mode: str) -> None:
        rows = cmp.rows_of(mode)
        self.table.clear()
        self.table.setColumnCount(len(cmp.runs))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(list(cmp.labels))
        self.table.setVerticalHeaderLabels([f"{r.length:,}" for r in rows])
        for row, r in enumerate(rows):
            for col, c in enumerate(r.cells):
                # Two lines (latency, then peak): one line was wider than the table's half.
                if c.median_ms is None:
                    text = c.status or "not run"
                elif col == cmp.baseline:
                    text = f"{fmt_ms(c.median_ms)}\n{fmt_bytes(c.peak_bytes)}"
                else:
                    text = f"{fmt_ms(c.median_ms)} ({fmt_ratio(c.latency_ratio)})\n{fmt_bytes(c.peak_bytes)}"
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.table.resizeRowsToContents()

    def _draw_maps(self, cmp: Comparison) -> None:
        """Mean-over-heads maps of the last captured layer, at the longest length every
        run with attention captured."""
        from ctxscope.core.attention.storage import load
        from ctxscope.report.attention_summary import captured_lengths, ok_entries

        self.maps.clear()
        with_maps = [(i, self.cache[r.id][1]) for i, r in enumerate(cmp.runs) if ok_entries(r)]
        common = set.intersection(*(set(captured_lengths(cmp.runs[i])) for i, _ in with_maps)) if with_maps else set()
        self.maps.setVisible(bool(common))
        if not common:
            self.maps_label.setText("Attention: none of the ticked runs captured maps at a common length."
                                    if with_maps else "")
            return
        length = max(common)
        self.maps_label.setText(f"Attention at L={length:,} (last captured layer, mean over heads, log scale)")
        for col, (i, path) in enumerate(with_maps):
            entries = [e for e in ok_entries(cmp.runs[i]) if e["length"] == length]
            entry = max(entries, key=lambda e: e["layer"])
            try:
                maps = load(path)[entry["array"]] if path is not None else None
            except (CtxscopeError, KeyError):
                maps = None
            view = self.maps.addViewBox(row=0, col=col, lockAspect=True, invertY=True)
            self.maps.addLabel(f"{cmp.labels[i]} · layer {entry['layer']}", row=1, col=col)
            if maps is None:
                continue
            mean = maps.mean(axis=0)
            image = np.where(mean > 0, np.log10(np.where(mean > 0, mean, 1.0)), np.nan)  # NaN: keys never seen
            valid = image[np.isfinite(image)]
            levels = (float(np.percentile(valid, 1)), float(valid.max())) if valid.size else (0.0, 1.0)
            # Averaged when drawn smaller than the map: nearest sampling aliases the diagonal.
            item = pg.ImageItem(image.T, levels=levels, autoDownsample=True)
            item.setColorMap(pg.colormap.get("viridis"))
            view.addItem(item)
