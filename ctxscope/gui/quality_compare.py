"""Quality in the Compare tab: each run's loss vs context overlaid (95 % bands), the
perplexity ratio to the baseline and retrieval per length in a table, and each run's
*claimed · fits · effective* line. Hidden when no compared run measured quality."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ctxscope.core.quality.effective import LossRow, by_length, effective_of, loss_rows
from ctxscope.core.results import RunResult
from ctxscope.gui.axes import LengthAxis
from ctxscope.report.charts import PALETTE
from ctxscope.report.quality import differences


class QualityCompare(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(axisItems={"bottom": LengthAxis("bottom")})
        self.plot.setTitle("loss vs context (same target tokens)")
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "context", units="tokens")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.setLabel("left", "nats/token")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.addLegend(offset=(8, 8))
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.lines = QLabel(wordWrap=True)
        row = QHBoxLayout()
        row.addWidget(self.plot, 1)
        row.addWidget(self.table, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.lines)
        layout.addLayout(row, 1)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.setVisible(False)

    def set_runs(self, runs: Sequence[RunResult], labels: Sequence[str], baseline: int) -> None:
        self.plot.clear()
        self.curves.clear()
        chosen = [i for i, r in enumerate(runs) if r.quality is not None and r.quality.loss + r.quality.needle]
        self.setVisible(bool(chosen))
        if not chosen:
            return
        rows = {i: loss_rows(runs[i].quality.loss) for i in chosen}  # type: ignore[union-attr]
        for i in chosen:
            colour = PALETTE[i % len(PALETTE)]
            ok = [r for r in rows[i] if r.mean is not None]
            banded = [r for r in ok if r.low is not None]
            if banded:
                low = pg.PlotDataItem([r.context for r in banded], [r.low for r in banded], pen=pg.mkPen((0, 0, 0, 0)))
                high = pg.PlotDataItem([r.context for r in banded], [r.high for r in banded], pen=pg.mkPen((0, 0, 0, 0)))
                for item in (low, high):
                    self.plot.addItem(item)
                brush = pg.mkColor(colour)
                brush.setAlpha(40)
                self.plot.addItem(pg.FillBetweenItem(low, high, brush=brush))
            self.curves[runs[i].id] = self.plot.plot([r.context for r in ok], [r.mean for r in ok],
                                                     pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=5,
                                                     symbolBrush=colour, name=labels[i])
        base = baseline if baseline in rows else chosen[0]
        self._fill_table(runs, labels, chosen, rows, base)
        lines = [f"{labels[i]}: {effective_of(runs[i].quality, runs[i].header.settings.quality).line()}"  # type: ignore[arg-type]
                 for i in chosen]
        self.lines.setText("\n".join(lines + [f"⚠ {d}" for d in differences([runs[i] for i in chosen])]))

    def _fill_table(self, runs: Sequence[RunResult], labels: Sequence[str], chosen: list[int],
                    rows: dict[int, list[LossRow]], base: int) -> None:
        contexts = sorted({r.context for i in chosen for r in rows[i]})
        retrieval = {i: by_length(runs[i].quality.needle) for i in chosen}  # type: ignore[union-attr]
        lengths = sorted({n for i in chosen for n in retrieval[i]})
        headers = []
        for i in chosen:
            headers += [f"{labels[i]} loss", f"ppl ÷ {labels[base]}" if i != base else "ppl", f"{labels[i]} found"]
        table = self.table
        table.clear()
        keys = sorted(set(contexts) | set(lengths))
        table.setRowCount(len(keys))
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.setVerticalHeaderLabels([f"{n:,}" for n in keys])
        for row_index, n in enumerate(keys):
            ref = next((r for r in rows[base] if r.context == n and r.mean is not None), None)
            for k, i in enumerate(chosen):
                row = next((r for r in rows[i] if r.context == n), None)
                loss = f"{row.mean:.4f}" if row and row.mean is not None else (row.status if row else "")
                if row and row.mean is not None and i != base and ref is not None and ref.mean is not None:
                    ppl = f"×{math.exp(row.mean - ref.mean):.3f}"  # ratio of perplexities
                else:
                    ppl = f"{row.perplexity:.2f}" if row and row.perplexity else ""
                cell = retrieval[i].get(n)
                found = f"{cell.found}/{cell.n}" if cell else ""
                for col, text in enumerate((loss, ppl, found)):
                    table.setItem(row_index, 3 * k + col, QTableWidgetItem(text))
        table.resizeColumnsToContents()
