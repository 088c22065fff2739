"""The Quality tab's plots: loss vs context with its 95 % band, and the trade-off
(loss and prefill latency on one context axis, with the knee and the claimed / fits /
effective lengths). Views only: fed rows, they change nothing."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from ctxscope.core.quality.effective import Effective, LossRow
from ctxscope.gui.axes import LengthAxis
from ctxscope.report.tradeoff import Tradeoff, loss_range, marks_by_length

LOSS_COLOUR = (44, 160, 44)
COST_COLOUR = (214, 39, 40)
# name → (colour, line style, where the label sits along the line: apart when lines coincide)
MARKS = {"knee": ((255, 127, 14), Qt.PenStyle.SolidLine, 0.3), "claimed": ((160, 160, 160), Qt.PenStyle.DashLine, 0.8),
         "fits": ((31, 119, 180), Qt.PenStyle.DashLine, 0.68), "retrieval": ((148, 103, 189), Qt.PenStyle.DotLine, 0.56),
         "loss flat": (LOSS_COLOUR, Qt.PenStyle.DotLine, 0.44)}


def _length_plot(title: str, y_label: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(axisItems={"bottom": LengthAxis("bottom")})
    plot.setTitle(title)
    plot.setLogMode(x=True, y=False)
    plot.setLabel("bottom", "context", units="tokens")
    plot.getAxis("bottom").enableAutoSIPrefix(False)
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.25)
    return plot


class LossPlot(pg.PlotWidget):
    """Mean loss of the target windows per context, with the 95 % band over windows."""

    def __init__(self) -> None:
        super().__init__(axisItems={"bottom": LengthAxis("bottom")})
        # Short: a title is a plot's minimum width (the long one was cut by the needle table).
        self.setTitle("loss of the same targets vs context", size="10pt")
        self.setToolTip("Mean loss of the same target tokens at every context length read before them, with the "
                        "95 % interval over the windows")
        self.setLogMode(x=True, y=False)
        # Target j of the K reads C + j tokens: the axis is C, and says so.
        self.setLabel("bottom", "context C before the targets (target j reads C + j)", units="tokens")
        self.getAxis("bottom").enableAutoSIPrefix(False)
        self.setLabel("left", "nats/token")
        self.showGrid(x=True, y=True, alpha=0.25)
        pen = pg.mkPen(LOSS_COLOUR, width=2)
        self.curve = self.plot([], [], pen=pen, symbol="o", symbolSize=6, symbolBrush=pg.mkBrush(LOSS_COLOUR))
        self.low = pg.PlotDataItem([], [], pen=pg.mkPen((0, 0, 0, 0)))
        self.high = pg.PlotDataItem([], [], pen=pg.mkPen((0, 0, 0, 0)))
        self.band = pg.FillBetweenItem(self.low, self.high, brush=pg.mkBrush(*LOSS_COLOUR, 50))
        for item in (self.low, self.high, self.band):
            self.addItem(item)
        self.failed = pg.ScatterPlotItem(symbol="x", size=12, pen=pg.mkPen(COST_COLOUR, width=2))
        self.addItem(self.failed)

    def set_rows(self, rows: Sequence[LossRow]) -> None:
        ok = [r for r in rows if r.mean is not None]
        self.curve.setData([r.context for r in ok], [r.mean for r in ok])
        banded = [r for r in ok if r.low is not None]
        self.low.setData([r.context for r in banded], [r.low for r in banded])
        self.high.setData([r.context for r in banded], [r.high for r in banded])
        failed = [r for r in rows if r.status in ("oom", "error")]
        top = max((r.high if r.high is not None else r.mean or 0.0 for r in ok), default=1.0)
        self.failed.setData([math.log10(r.context) for r in failed], [top] * len(failed))


class TradeoffPlot(pg.PlotWidget):
    """Loss (left axis) and prefill latency (right axis) per length, with markers."""

    def __init__(self) -> None:
        super().__init__(axisItems={"bottom": LengthAxis("bottom")})
        self.setTitle("what it costs beside what it buys", size="10pt")
        self.setLogMode(x=True, y=False)
        self.setLabel("bottom", "context", units="tokens")
        self.getAxis("bottom").enableAutoSIPrefix(False)
        self.setLabel("left", "loss (nats/token)", color="#2ca02c")
        self.showGrid(x=True, y=True, alpha=0.25)
        self.legend = self.addLegend(offset=(8, 8))
        self.loss = self.plot([], [], pen=pg.mkPen(LOSS_COLOUR, width=2), symbol="o", symbolSize=5,
                              symbolBrush=pg.mkBrush(LOSS_COLOUR), name="loss")
        # The loss's 95 % interval: whether a drop is more than noise is read off it.
        self.low = pg.PlotDataItem([], [], pen=pg.mkPen((0, 0, 0, 0)))
        self.high = pg.PlotDataItem([], [], pen=pg.mkPen((0, 0, 0, 0)))
        self.band = pg.FillBetweenItem(self.low, self.high, brush=pg.mkBrush(*LOSS_COLOUR, 40))
        for band_item in (self.low, self.high, self.band):
            self.addItem(band_item)
        # A proxy in the legend: a fill has no pen or symbol of its own to show.
        self.legend.addItem(pg.PlotDataItem(pen=pg.mkPen((0, 0, 0, 0)), fillLevel=0,
                                            fillBrush=pg.mkBrush(*LOSS_COLOUR, 90)), "loss 95 % interval")
        item = self.getPlotItem()
        item.showAxis("right")
        item.getAxis("right").setLabel("prefill latency (s)", color="#d62728")
        item.getAxis("right").enableAutoSIPrefix(False)
        self.cost_box = pg.ViewBox()
        item.scene().addItem(self.cost_box)
        item.getAxis("right").linkToView(self.cost_box)
        self.cost_box.setXLink(item)
        # The second view box has no log mode of its own: it is fed log10 lengths.
        self.cost = pg.PlotCurveItem([], [], pen=pg.mkPen(COST_COLOUR, width=2, style=Qt.PenStyle.DashLine))
        self.cost_box.addItem(self.cost)
        self.legend.addItem(self.cost, "prefill latency")
        item.vb.sigResized.connect(self._sync_views)
        self.marks: dict[str, pg.InfiniteLine] = {}

    def _sync_views(self) -> None:
        vb = self.getPlotItem().vb
        self.cost_box.setGeometry(vb.sceneBoundingRect())
        self.cost_box.linkedViewChanged(vb, self.cost_box.XAxis)

    def set_data(self, tradeoff: Tradeoff, effective: Effective | None, bands: Sequence[LossRow] = ()) -> None:
        """The curves; ``bands``: the loss rows (their 95 % intervals). Neither axis is
        zoomed to its data: the loss axis spans at least ``MIN_LOSS_SPAN`` nats/token
        around the interval, the cost starts at zero."""
        rows = [r for r in tradeoff.rows if r.loss is not None]
        self.loss.setData([r.length for r in rows], [r.loss for r in rows])
        banded = [r for r in bands if r.low is not None and r.high is not None]
        self.low.setData([r.context for r in banded], [r.low for r in banded])
        self.high.setData([r.context for r in banded], [r.high for r in banded])
        span = loss_range(list(bands) or [LossRow(r.length, "ok", r.loss, None, None, 1) for r in rows])
        if span is not None:
            self.getPlotItem().vb.enableAutoRange(y=False)
            self.setYRange(*span, padding=0)
        cost = [(r.length, r.prefill_ms) for r in tradeoff.rows if r.prefill_ms is not None]
        self.cost.setData(np.log10([n for n, _ in cost]) if cost else [], [ms / 1000 for _, ms in cost])
        self.cost_box.enableAutoRange(x=True, y=False)
        self.cost_box.setYRange(0, max([ms / 1000 for _, ms in cost] or [1.0]) * 1.08, padding=0)
        for line in self.marks.values():
            self.removeItem(line)
        self.marks.clear()
        lengths = [r.length for r in tradeoff.rows]
        wanted = [(tradeoff.knee, "knee")]
        if effective is not None:
            wanted += [(effective.claimed, "claimed"), (effective.fits, "fits"), (effective.retrieval, "retrieval"),
                       (effective.loss, "loss flat")]
        for value, name in marks_by_length(wanted):
            # Markers far outside the measured lengths would only squash the curves.
            if not lengths or not min(lengths) / 2 <= value <= max(lengths) * 2:
                continue
            colour, style, at = MARKS[name.split(" · ")[0]]
            line = pg.InfiniteLine(math.log10(value), angle=90, pen=pg.mkPen(colour, width=1.5, style=style),
                                   label=f"{name} {value:,}", labelOpts={"position": at, "color": colour,
                                                                         "rotateAxis": (1, 0), "anchors": [(0, 0.5), (0, 0.5)]})
            self.addItem(line, ignoreBounds=True)
            self.marks[name] = line
        self._sync_views()
