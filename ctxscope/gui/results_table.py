"""Sortable, copyable table of points (one row per point of every shown run)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QMenu, QTableWidget, QTableWidgetItem, QWidget

from ctxscope.core.predict.efficiency import PointEfficiency
from ctxscope.core.results import Point
from ctxscope.report.compare import peak_bytes
from ctxscope.report.fmt import fmt_bytes

COLUMNS = ("run", "mode", "length", "status", "median ms", "p10 ms", "p90 ms", "n", "tokens/s", "KV cache",
           "state", "activations", "peak", "roofline ms", "utilisation", "note")


class _NumberItem(QTableWidgetItem):
    """Sorts by the number behind the text (bytes sort as bytes, not as '1.5 GiB')."""

    def __init__(self, text: str, value: float | None) -> None:
        super().__init__(text)
        self.value = value if value is not None else float("-inf")
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", float("-inf"))


class ResultsTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setStretchLastSection(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_context_menu_requested)
        self.runs: set[str] = set()

    def clear_points(self) -> None:
        self.setRowCount(0)
        self.runs.clear()
        self.setColumnHidden(0, True)

    def add_point(self, run_label: str, p: Point, efficiency: PointEfficiency | None = None) -> None:
        """One row; ``efficiency`` (from the run's analytic block) adds the roofline lower
        bound, MFU / bandwidth utilisation and a flag where memory departs from the prediction."""
        lat, mem = p.latency_ms, p.memory
        eff = efficiency
        peak = peak_bytes(mem)  # the allocator peak on a GPU, the model peak on a CPU (as reports name them)
        note = p.error or ("noisy (IQR/median ≥ 10%)" if lat is not None and lat.noisy else "")
        if p.contention:
            note = (note + "; " if note else "") + f"contended: {p.contention}"
        if eff is not None and eff.memory_departure is not None:
            note = (note + "; " if note else "") + f"weights + KV {eff.memory_departure:+.0%} vs predicted"
        util = None if eff is None else eff.mfu if eff.mfu is not None else eff.bandwidth_util
        util_text = "-" if util is None else f"{'MFU' if eff.mfu is not None else 'BW'} {util:.1%}"
        label = QTableWidgetItem(run_label)
        label.setToolTip(run_label)
        cells = [
            label, QTableWidgetItem(p.mode), _NumberItem(str(p.length), p.length),
            QTableWidgetItem(p.status),
            _NumberItem(f"{lat.median:.3f}" if lat else "-", lat.median if lat else None),
            _NumberItem(f"{lat.p10:.3f}" if lat else "-", lat.p10 if lat else None),
            _NumberItem(f"{lat.p90:.3f}" if lat else "-", lat.p90 if lat else None),
            _NumberItem(str(lat.n) if lat else "-", lat.n if lat else None),
            _NumberItem(f"{p.tokens_per_s:,.1f}" if p.tokens_per_s else "-", p.tokens_per_s),
            _NumberItem(fmt_bytes(mem.kv_cache_bytes) if mem else "-", mem.kv_cache_bytes if mem else None),
            _NumberItem(fmt_bytes(mem.state_bytes) if mem and mem.state_bytes is not None else "-",
                        mem.state_bytes if mem else None),
            _NumberItem(fmt_bytes(mem.activation_bytes) if mem else "-", mem.activation_bytes if mem else None),
            _NumberItem(fmt_bytes(peak), peak),
            _NumberItem(f"{eff.predicted_ms:.3f}" if eff and eff.predicted_ms is not None else "-",
                        eff.predicted_ms if eff else None),
            _NumberItem(util_text, util), QTableWidgetItem(note),
        ]
        if p.status != "ok":
            for cell in cells:
                cell.setForeground(Qt.GlobalColor.red)
        elif p.contention:  # measured, but not alone on the device: say it where the figure is
            cells[3].setText("ok · contended")
            cells[3].setToolTip(p.contention)
            cells[4].setForeground(Qt.GlobalColor.darkYellow)
        self.runs.add(run_label)
        # One run: its label on every row took half the width and cut the figures off.
        self.setColumnHidden(0, len(self.runs) < 2)
        sorting = self.isSortingEnabled()
        self.setSortingEnabled(False)  # inserting into a sorted table scatters the row's cells
        row = self.rowCount()
        self.insertRow(row)
        for col, cell in enumerate(cells):
            self.setItem(row, col, cell)
        self.setSortingEnabled(sorting)

    def fit_columns(self) -> None:
        """Columns sized to their contents, the run label capped (it is elided; the full
        label is in its tooltip and the legends)."""
        self.resizeColumnsToContents()
        self.setColumnWidth(0, min(self.columnWidth(0), 180))

    def selected_text(self) -> str:
        """Selected rows (or all) as tab-separated text with a header line."""
        rows = sorted({i.row() for i in self.selectedIndexes()}) or list(range(self.rowCount()))
        lines = ["\t".join(COLUMNS)]  # the run column too, hidden or not: a paste says which run
        for r in rows:
            lines.append("\t".join(self.item(r, c).text() if self.item(r, c) else "" for c in range(self.columnCount())))
        return "\n".join(lines)

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.matches(QKeySequence.StandardKey.Copy):
            QGuiApplication.clipboard().setText(self.selected_text())
            return
        super().keyPressEvent(event)

    def _on_context_menu_requested(self, pos) -> None:
        menu = QMenu(self)
        menu.addAction("Copy rows", lambda: QGuiApplication.clipboard().setText(self.selected_text()))
        menu.exec(self.viewport().mapToGlobal(pos))
