"""Live plots against context length: latency (median + p10–p90 band), throughput, and
the stacked memory breakdown. Views only: fed points, they never change results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QGraphicsItem

from ctxscope.core.results import Point
from ctxscope.gui.axes import EMPTY_LENGTHS, LengthAxis, LogValueAxis

MODE_COLORS = {"prefill": (31, 119, 180), "decode": (255, 127, 14), "forward": (44, 160, 44)}
RUN_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)
INVISIBLE = (0, 0, 0, 0)  # a pen that draws nothing but still yields a path (bands need one)
# Legend corners: (item and parent anchor, offset sign). Tried in this order; the first
# that covers the fewest data points wins.
CORNERS = (((0, 0), (1, 1)), ((1, 0), (-1, 1)), ((1, 1), (-1, -1)), ((0, 1), (1, -1)))
#: While a sweep fills a plot its view leaves room past the data — an octave of length, the
#: data's span and half again in y — so the next points fall inside it: the axes (ticks, grid,
#: labels: most of a repaint) are then rebuilt only when a point falls outside, not at
#: every point as pyqtgraph's auto-range did. A finished run is fitted snugly.
X_ROOM_LOG = float(np.log10(2))
Y_ROOM = 1.5
PAD = 0.04  # of the span, each side, like pyqtgraph's own padding


@dataclass
class _Series:
    """One (run, mode) curve with its points kept sorted by length."""

    points: dict[int, Point] = field(default_factory=dict)
    items: list = field(default_factory=list)
    xy: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))  # (length, y) of the ok points, for the legend

    def ok(self) -> list[Point]:
        return [self.points[k] for k in sorted(self.points) if self.points[k].status == "ok"]

    @property
    def drawn(self) -> bool:
        """Whether it is on the plot now: its items built and not hidden."""
        return bool(self.items) and self.items[0].isVisible()


class _ContextPlot(pg.PlotWidget):
    """Base: x = context length (tokens, log axis), one series per (run, mode)."""

    y_label = ""
    y_units: str | None = None

    legend_offset = (8, 8)

    def __init__(self, title: str) -> None:
        super().__init__(axisItems={"bottom": LengthAxis("bottom"), "left": LogValueAxis("left")})
        self.setTitle(title)
        self.setLabel("bottom", "context length", units="tokens")
        self.setLabel("left", self.y_label, units=self.y_units)
        self.getAxis("bottom").enableAutoSIPrefix(False)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setLogMode(x=True, y=False)
        for name in ("left", "bottom"):
            # Each axis draws its grid across the whole view, so every change of a curve
            # replayed its ticks, grid and labels (2-3 ms an axis, twice a slice in Qt's
            # software rasteriser); cached, they are redrawn only when their ticks change.
            self.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            # Ticks and grid lines of two levels, not three: the third (sub-minor, drawn at
            # 4 % opacity) was half the grid's lines and 6 of the 15 ms an axis-changing
            # repaint took at 1440×900 in the software rasteriser.
            self.getAxis(name).setStyle(maxTickLevel=1)
        self.legend = self.addLegend(offset=self.legend_offset)
        self._legend_at: tuple = ()
        self.series: dict[tuple[str, str], _Series] = {}
        self.run_order: list[str] = []
        self.run_labels: dict[str, str] = {}
        self.readout = pg.TextItem(anchor=(0, 1), color=(200, 200, 200), fill=(30, 30, 30, 200))
        self.readout.setZValue(100)
        self.readout.setVisible(False)
        self.addItem(self.readout, ignoreBounds=True)
        self.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        self._fitting = False  # the view follows the data (until the user pans or zooms)
        self._planned: tuple[int, int] | None = None  # the lengths a running sweep will measure
        self.getPlotItem().vb.sigRangeChangedManually.connect(self._on_range_changed_manually)
        self.getPlotItem().autoBtn.clicked.connect(self._on_auto_button_clicked)
        self.show_empty_range()

    def plot(self, *args, **kwargs) -> pg.PlotDataItem:
        """``PlotItem.plot`` without the dynamic range limit: with it (pyqtgraph's default)
        every change of the view's y range re-ran ``setData`` on every curve of the plot —
        a third of a refitting turn. Our curves hold finite values a few decades apart."""
        kwargs.setdefault("dynamicRangeLimit", None)
        return self.getPlotItem().plot(*args, **kwargs)

    def show_empty_range(self) -> None:
        """Before any data: typical lengths on the axis (pyqtgraph's default 1…10 tokens
        was ticked 2, 4, 8); the first data turn auto-range back on."""
        self.getPlotItem().vb.setRange(xRange=tuple(np.log10(EMPTY_LENGTHS)), yRange=(0, 1), padding=0)

    def data_arrived(self) -> None:
        self._fitting = True

    def plan_lengths(self, lengths: tuple[int, ...] | list[int]) -> None:
        """The lengths a sweep will measure: while it runs the x axis spans them all from
        its first point, so it never changes (every change rebuilt the axes: ticks, grid,
        labels) and says at once how far the sweep goes. Several runs: their union."""
        if not lengths:
            return
        lo, hi = min(lengths), max(lengths)
        if self._planned is not None:
            lo, hi = min(lo, self._planned[0]), max(hi, self._planned[1])
        self._planned = (lo, hi)
        if not self.series and self.getPlotItem().ctrl.logXCheck.isChecked():
            # Before its first point the plot shows the sweep's lengths (its first point
            # then changes y alone: one axis rebuilt in that turn, not two).
            x0, x1 = np.log10(lo), np.log10(hi)
            span = (x1 - x0) or 0.3
            self.getPlotItem().vb.setRange(xRange=(x0 - PAD * span, x1 + PAD * span), padding=0)

    def fit(self, *, snug: bool = False) -> None:
        """Fit the view to the data when a point falls outside it or the data fill too
        little of it; ``snug``: always, and without the room left for a sweep's
        next points. Leaves a view the user panned or zoomed alone."""
        if not self._fitting:
            return
        vb = self.getPlotItem().vb
        vb.disableAutoRange()  # pyqtgraph's would refit at every point
        bounds = vb.childrenBounds()
        if bounds[0] is None or bounds[1] is None:
            return
        (x0, x1), (y0, y1) = bounds
        log_x = self.getPlotItem().ctrl.logXCheck.isChecked()
        x_room = 0.0 if snug else None
        if not snug and self._planned is not None:
            p0, p1 = (np.log10(v) for v in self._planned) if log_x else self._planned
            # The data's bounds reach a little past the first and last lengths (their
            # symbols' pixels): that is not past the plan. Past it (a search's lengths),
            # the view leaves room as without one.
            tol = PAD * ((p1 - p0) or 0.3)
            x0 = p0 if x0 >= p0 - tol else x0
            if x1 <= p1 + tol:
                x1, x_room = p1, 0.0
        xs = (x1 - x0) or (0.3 if log_x else abs(x1) or 1.0)
        ys = (y1 - y0) or abs(y1) or 1.0
        if x_room is None:
            x_room = X_ROOM_LOG if log_x else xs
        y_room = 0.0 if snug else self._y_room() * ys
        want_x = (x0 - PAD * xs, x1 + PAD * xs + x_room)
        want_y = (y0 - PAD * ys, y1 + PAD * ys + y_room)
        (vx0, vx1), (vy0, vy1) = vb.viewRange()
        # Within the padding of an edge counts as outside: a point on the edge was drawn
        # half cut, its tick label gone.
        mx, my = PAD * xs, PAD * ys
        outside = x0 < vx0 + mx or x1 > vx1 - mx or y0 < vy0 + my or y1 > vy1 - my
        too_wide = (vx1 - vx0) > 2.5 * (want_x[1] - want_x[0]) or (vy1 - vy0) > 2.5 * (want_y[1] - want_y[0])
        if snug or outside or too_wide:
            vb.setRange(xRange=want_x, yRange=want_y, padding=0)
        if snug:
            self._make_legend_room()

    def _y_room(self) -> float:
        """The share of the data's y span left above it while a sweep runs."""
        return Y_ROOM

    def _on_range_changed_manually(self, *_: object) -> None:
        self._fitting = False  # the user's view: kept until the auto button asks again

    def _on_auto_button_clicked(self) -> None:
        self._fitting = True
        self.fit(snug=True)

    def clear_runs(self) -> None:
        for s in self.series.values():
            for item in s.items:
                self.removeItem(item)
        self.series.clear()
        self.run_order.clear()
        self.run_labels.clear()
        self.legend.clear()
        self.readout.setVisible(False)
        self._fitting = False
        self._planned = None
        self.show_empty_range()

    def prepare(self, run_key: str, label: str, mode: str) -> bool:
        """Build the items of the (run, mode) curve if it has none yet; ``True`` when it
        built them (a new curve's items cost as much as a point's update: a caller that
        paces its work gives them a turn of their own)."""
        if (run_key, mode) in self.series:
            return False
        if not self.series:
            self.data_arrived()
        if run_key not in self.run_order:
            self.run_order.append(run_key)
            self.run_labels[run_key] = label
            if len(self.run_order) == 2:
                self._label_first_run()
        series = self.series[(run_key, mode)] = _Series()
        if not self._drawn(run_key, mode):
            return False  # built when it is shown (the memory plot draws one series)
        series.items = self._make_items(label, mode, self.run_order.index(run_key))
        return True

    def _drawn(self, run_key: str, mode: str) -> bool:
        """Whether the (run, mode) series has items of its own; every series here."""
        return True

    def shows(self, run_key: str, mode: str) -> bool:
        """Whether the (run, mode) series is drawn now (a caller skips a repaint if not)."""
        series = self.series.get((run_key, mode))
        return series is not None and series.drawn

    def add_point(self, run_key: str, label: str, point: Point) -> None:
        self.prepare(run_key, label, point.mode)
        series = self.series[(run_key, point.mode)]
        series.points[point.length] = point
        if series.items:
            self._update(series)
        series.xy = np.array([(p.length, self._y(p)) for p in series.ok()], dtype=float).reshape(-1, 2)
        self.place_legend()

    def place_legend(self) -> int:
        """Move the legend to the corner where it hides the fewest data points (a fixed
        corner covers the first or last point of some curve in every layout); returns how
        many it hides there. The four candidate rectangles are mapped into data
        coordinates, not every point into the scene: mapping each point took a third of a
        point's update with 60 points shown."""
        vb = self.getPlotItem().vb
        box = vb.sceneBoundingRect()
        size = self.legend.sceneBoundingRect().size()
        if box.isEmpty() or size.isEmpty():
            return 0
        xy = np.concatenate([s.xy for s in self.series.values() if s.drawn]
                            + [np.empty((0, 2))])
        view = vb.viewRect()  # the scene → data mapping is axis-aligned: scale and offset
        sx, sy = view.width() / box.width(), view.height() / box.height()
        ctrl = self.getPlotItem().ctrl
        if ctrl.logXCheck.isChecked():
            xy[:, 0] = np.log10(np.maximum(xy[:, 0], 1e-30))
        if ctrl.logYCheck.isChecked():
            xy[:, 1] = np.log10(np.maximum(xy[:, 1], 1e-30))
        margin = 8.0

        def covered(anchor: tuple[int, int]) -> int:
            x = box.left() + margin if anchor[0] == 0 else box.right() - margin - size.width()
            y = box.top() + margin if anchor[1] == 0 else box.bottom() - margin - size.height()
            x0, x1 = view.left() + (x - 6 - box.left()) * sx, view.left() + (x + size.width() + 6 - box.left()) * sx
            y1 = view.bottom() - (y - 6 - box.top()) * sy  # scene y grows downwards, data y upwards
            y0 = view.bottom() - (y + size.height() + 6 - box.top()) * sy
            inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
            return int(inside.sum())

        anchor, sign = min(CORNERS, key=lambda c: covered(c[0]))
        at = (anchor, round(size.width()), round(size.height()))
        if at != self._legend_at:  # moving it costs a layout pass: only when it moves
            self._legend_at = at
            self.legend.anchor(itemPos=anchor, parentPos=anchor, offset=(sign[0] * margin, sign[1] * margin))
        return covered(anchor)

    def _make_legend_room(self) -> None:
        """After a snug fit: when every corner holds a point (a flat curve starting and
        ending near the top, another along the bottom), raise the top by the legend's
        height, so a top corner above the data is free for it."""
        if not self.legend.items or self.place_legend() == 0:
            return
        vb = self.getPlotItem().vb
        box, size = vb.sceneBoundingRect(), self.legend.sceneBoundingRect().size()
        share = (size.height() + 8 + 2 * 6) / box.height()  # legend, its margin, the check's slack
        if share >= 0.6:
            return  # a plot too small to give it room: it keeps the corner hiding least
        (_, _), (y0, y1) = vb.viewRange()
        # The raised span S + e gives the legend share·(S + e) of it; that fits in e when
        # e = S·share / (1 − share).
        vb.setRange(yRange=(y0, y1 + (y1 - y0) * share / (1 - share)), padding=0)
        self.place_legend()

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.readout.setVisible(False)  # the hover read-out goes with the mouse
        super().leaveEvent(event)

    def _label_first_run(self) -> None:
        """A lone run's legend says only the mode; once runs are compared, name it too."""
        first = self.run_order[0]
        for (run_key, mode), series in self.series.items():
            if run_key == first and series.items:
                label = self.legend.getLabel(series.items[0])
                if label is not None:
                    label.setText(f"{mode} — {self.run_labels[first]}")

    def _pen(self, mode: str, run_index: int, width: float = 2.0) -> pg.mkPen:
        return pg.mkPen(MODE_COLORS.get(mode, (150, 150, 150)), width=width, style=RUN_STYLES[run_index % 4])

    def _make_items(self, label: str, mode: str, run_index: int) -> list:
        curve = self.plot([], [], pen=self._pen(mode, run_index), symbol="o", symbolSize=6,
                          symbolBrush=MODE_COLORS.get(mode), name=f"{mode} — {label}" if run_index else mode)
        return [curve]

    def _update(self, series: _Series) -> None:
        raise NotImplementedError

    def _describe(self, run_key: str, point: Point) -> str:
        raise NotImplementedError

    def _on_scene_mouse_moved(self, pos: QPointF) -> None:
        vb = self.getPlotItem().vb
        if not self.series or not self.sceneBoundingRect().contains(pos):
            self.readout.setVisible(False)
            return
        best, best_d = None, 20.0  # pixels
        for (run_key, _), series in self.series.items():
            if not series.drawn:
                continue
            for point in series.ok():
                scene = vb.mapViewToScene(QPointF(*self._view_xy(point)))
                d = float(np.hypot(scene.x() - pos.x(), scene.y() - pos.y()))
                if d < best_d:
                    best, best_d = (run_key, point), d
        if best is None:
            self.readout.setVisible(False)
            return
        self.readout.setText(self._describe(*best))
        self.readout.setPos(*self._view_xy(best[1]))
        self.readout.setVisible(True)

    def _view_xy(self, point: Point) -> tuple[float, float]:
        x = np.log10(point.length) if self.getPlotItem().ctrl.logXCheck.isChecked() else point.length
        y = self._y(point)
        if self.getPlotItem().ctrl.logYCheck.isChecked():
            y = np.log10(max(y, 1e-30))
        return float(x), float(y)

    def _y(self, point: Point) -> float:
        raise NotImplementedError


class LatencyPlot(_ContextPlot):
    """Median latency per mode with its p10–p90 band; linear or log y."""

    y_label = "latency"
    y_units = "s"

    def __init__(self) -> None:
        super().__init__("Latency")
        self.setToolTip("Median latency with its p10–p90 band.\nprefill: the whole prompt of L tokens.\n"
                        "decode: one new token with L tokens already in the KV cache.")
        self.overlays: dict[tuple[str, str], list] = {}  # (kind, mode) → items: roofline, fit, crossover

    def set_log_y(self, on: bool) -> None:
        self.setLogMode(x=True, y=on)
        # The bands follow their edge curves only when those emit sigPlotChanged, which a
        # log-mode switch does not: rebuild them from the transformed edges now.
        for series in self.series.values():
            series.items[3].updatePath()
        self.fit(snug=True)

    def clear_runs(self) -> None:
        super().clear_runs()
        for items in self.overlays.values():
            for item in items:
                self.removeItem(item)
        self.overlays.clear()

    def _replace_overlay(self, key: tuple[str, str], items: list) -> None:
        for item in self.overlays.pop(key, []):
            self.removeItem(item)
        self.overlays[key] = items

    def set_prediction(self, mode: str, lengths: list[int], predicted_ms: list[float]) -> None:
        """The roofline lower bound of ``mode`` (thin dashed, in the mode's colour)."""
        if not lengths:
            return
        self.data_arrived()
        pen = pg.mkPen(MODE_COLORS.get(mode, (150, 150, 150)), width=1, style=Qt.PenStyle.DashLine)
        curve = self.plot(np.array(lengths, dtype=float), np.array(predicted_ms) / 1e3, pen=pen,
                          name=f"{mode}: roofline lower bound")
        self._replace_overlay(("prediction", mode), [curve])

    def set_fit(self, mode: str, fit, lengths: list[int]) -> None:
        """The fit a + bL + cL² over the measured range (dotted) and, when it falls near
        that range, the length where the quadratic term overtakes the linear one."""
        if fit is None or not lengths or not fit.physical:  # too few lengths, or impossible coefficients
            self._replace_overlay(("fit", mode), [])
            return
        colour = MODE_COLORS.get(mode, (150, 150, 150))
        xs = np.geomspace(min(lengths), max(lengths), 64)
        curve = self.plot(xs, np.array([fit(x) for x in xs]) / 1e3,
                          pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DotLine),
                          name=f"{mode}: fit a+bL+cL² (R² {fit.r2:.3f})")
        items = [curve]
        if fit.crossover and min(lengths) / 4 <= fit.crossover <= max(lengths) * 4:
            line = pg.InfiniteLine(np.log10(fit.crossover) if self.getPlotItem().ctrl.logXCheck.isChecked()
                                   else fit.crossover, angle=90, pen=pg.mkPen(colour, width=1),
                                   label=f"cL² = bL at {fit.crossover:,.0f}",
                                   # Well inside the view: at 0.9 the rotated text ran off the top.
                                   labelOpts={"position": 0.55, "color": colour, "rotateAxis": (1, 0),
                                              "anchors": [(0.5, 0), (0.5, 0)]})
            self.addItem(line, ignoreBounds=True)
            items.append(line)
        self._replace_overlay(("fit", mode), items)

    def _make_items(self, label: str, mode: str, run_index: int) -> list:
        curve, = super()._make_items(label, mode, run_index)
        lo = self.plot([], [], pen=pg.mkPen(INVISIBLE))
        hi = self.plot([], [], pen=pg.mkPen(INVISIBLE))
        r, g, b = MODE_COLORS.get(mode, (150, 150, 150))
        band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(r, g, b, 50))
        # An empty fill reports a (0, 0) rectangle, which would drag the auto-range to x=1.
        self.addItem(band, ignoreBounds=True)
        return [curve, lo, hi, band]

    def _update(self, series: _Series) -> None:
        ok = series.ok()
        x = np.array([p.length for p in ok], dtype=float)
        curve, lo, hi, _ = series.items
        curve.setData(x, np.array([p.latency_ms.median / 1e3 for p in ok]))
        lo.setData(x, np.array([p.latency_ms.p10 / 1e3 for p in ok]))
        hi.setData(x, np.array([p.latency_ms.p90 / 1e3 for p in ok]))

    def _y(self, point: Point) -> float:
        return point.latency_ms.median / 1e3

    def _describe(self, run_key: str, p: Point) -> str:
        lat = p.latency_ms
        return (f"{p.mode} L={p.length}\nmedian {lat.median:.3f} ms\np10–p90 {lat.p10:.3f}–{lat.p90:.3f} ms\n"
                f"n={lat.n}{'  noisy' if lat.noisy else ''}")


class ThroughputPlot(_ContextPlot):
    y_label = "throughput"
    y_units = "tokens/s"

    def __init__(self) -> None:
        super().__init__("Throughput")
        self.setToolTip("prefill/forward: L·batch tokens per second of a whole pass.\n"
                        "decode: generated tokens per second at depth L.")

    def _update(self, series: _Series) -> None:
        # A point without a rate (a hand-made or older file) is left out: as NaN it made
        # pyqtgraph's bounds warn on every paint.
        ok = [p for p in series.ok() if p.tokens_per_s is not None]
        series.items[0].setData(np.array([p.length for p in ok], dtype=float),
                                np.array([p.tokens_per_s for p in ok], dtype=float))

    def _y(self, point: Point) -> float:
        return float(point.tokens_per_s or 0.0)

    def _describe(self, run_key: str, p: Point) -> str:
        return f"{p.mode} L={p.length}\n{p.tokens_per_s:,.1f} tokens/s"
