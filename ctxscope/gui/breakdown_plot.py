"""Where the time goes vs context length: the components of one run's profiled passes
(``--breakdown``), stacked as time (ms per call) or as shares of it; hover for the ms.
A view: it shows the first run's points of one mode."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF

from ctxscope.core.breakdown import COMPONENT_LABELS, COMPONENTS
from ctxscope.core.results import Point
from ctxscope.gui.axes import LengthAxis
from ctxscope.gui.plots import INVISIBLE
from ctxscope.report.breakdown import COLOURS


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


class BreakdownPlot(pg.PlotWidget):
    def __init__(self) -> None:
        super().__init__(axisItems={"bottom": LengthAxis("bottom")})
        self.setTitle("Breakdown")
        self.setLabel("bottom", "context length", units="tokens")
        self.getAxis("bottom").enableAutoSIPrefix(False)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setLogMode(x=True, y=False)
        self.setToolTip("Where the time goes: a separate profiled pass per point (never the timed one), split by "
                        "the module each op ran in.\nStacked bottom to top: attention kernel, q/k/v/o projections, "
                        "MLP / experts, recurrent mixers, norms, embeddings + LM head, other.\nHover for the ms.")
        self.legend = self.addLegend(offset=(8, 4))
        self.legend.setColumnCount(4)  # one band across the top, above the stack's 100 %
        self.mode = "prefill"
        self.as_share = True
        self.run_id: str | None = None
        self.points: dict[tuple[str, int], Point] = {}
        self._items: list[pg.GraphicsObject] = []
        self.curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # component → (lengths, top of its band)
        self.readout = pg.TextItem(anchor=(0, 1), color=(230, 230, 230), fill=(30, 30, 30, 210))
        self.readout.setZValue(100)
        self.readout.setVisible(False)
        self.addItem(self.readout, ignoreBounds=True)
        self.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        self._redraw()

    def clear_runs(self) -> None:
        self.run_id = None
        self.points.clear()
        self._redraw()

    def has_data(self) -> bool:
        return bool(self.points)

    def add_point(self, run_id: str, point: Point) -> None:
        """Keep the point if it carries a breakdown of the first run shown."""
        b = point.breakdown
        if point.status != "ok" or not b or b.get("error") or not b.get("components_ms"):
            return
        if self.run_id is None:
            self.run_id = run_id
        if run_id != self.run_id:
            return
        self.points[(point.mode, point.length)] = point
        if point.mode == self.mode:
            self._redraw()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self._redraw()

    def set_share(self, on: bool) -> None:
        self.as_share = on
        self._redraw()

    def _rows(self) -> list[Point]:
        return [self.points[k] for k in sorted(self.points) if k[0] == self.mode]

    def _values(self, point: Point) -> dict[str, float]:
        parts = (point.breakdown or {}).get("components_ms") or {}
        values = {k: float(parts.get(k, 0.0)) for k in COMPONENTS}
        if self.as_share:
            whole = sum(values.values()) or 1.0
            values = {k: 100 * v / whole for k, v in values.items()}
        return values

    def _redraw(self) -> None:
        for item in self._items:
            self.removeItem(item)
        self._items.clear()
        self.legend.clear()
        self.curves.clear()
        unit = "share of profiled time (%)" if self.as_share else "ms per call" if self.mode != "decode" \
            else "ms per token"
        self.setLabel("left", unit)
        rows = self._rows()
        if not rows:
            self.setXRange(np.log10(128), np.log10(32768), padding=0.05)
            self.setYRange(0, 100 if self.as_share else 1)
            return
        x = np.array([p.length for p in rows], dtype=float)
        values = [self._values(p) for p in rows]
        used = [k for k in COMPONENTS if any(v[k] > 0 for v in values)]
        bottom = np.zeros(len(rows))
        # The curves join the plot (and its log x) before a band is laid between them.
        below = self.plot(x, bottom, pen=pg.mkPen(INVISIBLE))  # an invisible pen still yields a path
        self._items.append(below)
        for k in used:
            top = bottom + np.array([v[k] for v in values])
            colour = _rgb(COLOURS[k])
            curve = self.plot(x, top, pen=pg.mkPen(colour, width=1), symbol="o", symbolSize=4,
                              symbolBrush=colour, symbolPen=None, name=COMPONENT_LABELS[k])
            fill = pg.FillBetweenItem(below, curve, brush=pg.mkBrush(*colour, 170))
            self.addItem(fill)
            self._items += [fill, curve]
            self.curves[k] = (x, top)
            bottom, below = top, curve
        lo, hi = float(np.log10(x.min())), float(np.log10(x.max()))
        pad = max(0.05, 0.05 * (hi - lo))
        self.setXRange(lo - pad, hi + pad, padding=0)
        # Headroom above the stack for the legend's rows.
        self.setYRange(0, (100.0 if self.as_share else float(bottom.max()) or 1.0) * 1.3, padding=0)

    def describe(self, point: Point) -> str:
        b = point.breakdown or {}
        parts = b.get("components_ms") or {}
        total = float(b.get("total_ms") or 0.0)
        whole = sum(float(parts.get(k, 0.0)) for k in COMPONENTS) or 1.0
        lines = [f"{point.mode} L={point.length:,}: profiled {total:.2f} ms"]
        lines += [f"{COMPONENT_LABELS[k]}: {float(parts.get(k, 0.0)):.2f} ms ({100 * float(parts.get(k, 0.0)) / whole:.0f} %)"
                  for k in COMPONENTS if float(parts.get(k, 0.0)) > 0]
        over = b.get("overhead")
        if over:
            lines.append(f"profiled ÷ timed median: {over:.2f}×")
        return "\n".join(lines)

    def _on_scene_mouse_moved(self, pos: QPointF) -> None:
        rows = self._rows()
        if not rows or not self.sceneBoundingRect().contains(pos):
            self.readout.setVisible(False)
            return
        vb = self.getPlotItem().vb
        view = vb.mapSceneToView(pos)
        best = min(rows, key=lambda p: abs(np.log10(p.length) - view.x()))
        scene = vb.mapViewToScene(QPointF(float(np.log10(best.length)), view.y()))
        if abs(scene.x() - pos.x()) > 30:  # pixels
            self.readout.setVisible(False)
            return
        self.readout.setText(self.describe(best))
        self.readout.setPos(float(np.log10(best.length)), view.y())
        self.readout.setVisible(True)
