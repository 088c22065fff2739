"""The Attention tab: pooled maps per length / layer / head, the last-token profile,
small multiples of every head, and statistics against context length."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSpinBox, QSplitter,
                               QVBoxLayout, QWidget)

from ctxscope.core.lengths import format_size
from ctxscope.gui.attention_data import AttentionData, Layer
from ctxscope.gui.axes import LengthAxis

STATS = (("sink_mass", "sink mass (first tokens)"), ("entropy", "normalised entropy"),
         ("local_mass", "local mass (within window)"), ("mean_distance", "mean query–key distance"),
         ("span_mass", "mass on the needle"))


NEEDLE = (214, 39, 40)


def _needle_band(orientation: str) -> pg.LinearRegionItem:
    """The needle's token span as a red band (yellow unlabelled edges read as a crosshair;
    the labels are :func:`_needle_label`)."""
    return pg.LinearRegionItem(orientation=orientation, movable=False, brush=(*NEEDLE, 45),
                               pen=pg.mkPen((*NEEDLE, 160), width=1))


def _needle_label(anchor: tuple[float, float]) -> pg.TextItem:
    label = pg.TextItem("needle", color=(255, 140, 140), anchor=anchor)
    label.setVisible(False)
    return label


class AttentionView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data = AttentionData()
        self.length = QComboBox()
        self.layer = QSpinBox()
        self.head = QComboBox()
        for combo in (self.length, self.head):  # filled after the first show: sized then, "mean of heads" was cut
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.head.setMinimumContentsLength(len("mean of heads"))
        self.scale = QComboBox()
        self.scale.addItems(["log", "linear"])  # log by default: sinks dwarf everything else on a linear scale
        self.stat = QComboBox()
        for name, label in STATS:
            self.stat.addItem(label, name)
        export = QPushButton("Export PNG…")
        export.clicked.connect(lambda: self.export_png())
        for w in (self.length, self.head, self.scale, self.stat):
            w.currentIndexChanged.connect(self.refresh)
        self.layer.valueChanged.connect(self.refresh)
        controls = QHBoxLayout()
        for label, w in (("length", self.length), ("layer", self.layer), ("head", self.head), ("scale", self.scale)):
            controls.addWidget(QLabel(label))
            controls.addWidget(w)
        controls.addStretch(1)
        controls.addWidget(export)

        self.canvas = pg.GraphicsLayoutWidget()
        self.map_plot = self.canvas.addPlot(row=0, col=0)
        self.map_plot.setLabel("bottom", "key position", units="tokens")
        self.map_plot.setLabel("left", "query position", units="tokens")
        self.map_plot.invertY(True)
        self.map_plot.setAspectLocked(True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setAutoDownsample(True)
        self.map_plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(colorMap="viridis", interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.map_plot)
        self.span_keys, self.span_queries = _needle_band("vertical"), _needle_band("horizontal")
        # In the map's upper right, where a decoder's queries cannot see (nothing is hidden):
        # beside the key band near the top, above the query band near the right edge.
        self.needle_keys, self.needle_queries = _needle_label((0.0, 0.0)), _needle_label((1.0, 1.0))
        for item in (self.span_keys, self.span_queries, self.needle_keys, self.needle_queries):
            self.map_plot.addItem(item, ignoreBounds=True)
        self.profile_plot = self.canvas.addPlot(row=1, col=0)
        self.profile_plot.setMaximumHeight(160)
        self.profile_plot.setLabel("left", "p (last token)")
        self.profile_plot.setLabel("bottom", "key position", units="tokens")
        self.profile_plot.setXLink(self.map_plot)
        self.profile_curve = self.profile_plot.plot([], [], pen=pg.mkPen((31, 119, 180), width=1))
        self.span_profile = _needle_band("vertical")
        pg.InfLineLabel(self.span_profile.lines[1], text="needle", position=0.85, anchors=[(0, 0.5), (0, 0.5)],
                        color=NEEDLE)
        self.profile_plot.addItem(self.span_profile, ignoreBounds=True)
        self.readout = QLabel("Hover the map to read query/key ranges.")
        self.readout.setWordWrap(True)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.map_plot.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)

        self.grid = pg.GraphicsLayoutWidget()
        self.grid.setToolTip("Every head of this layer: click one to show it")
        self.grid_images: list[pg.ImageItem] = []
        self.stats_plot = pg.PlotWidget(axisItems={"bottom": LengthAxis("bottom")})
        self.stats_plot.setLogMode(x=True, y=False)
        self.stats_plot.setLabel("bottom", "context length", units="tokens")
        self.stats_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.stats_plot.showGrid(x=True, y=True, alpha=0.25)
        stats_box = QWidget()
        stats_layout = QVBoxLayout(stats_box)
        stats_layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        what = QLabel("statistic vs L (this layer; thin: heads, thick: mean)", wordWrap=True)
        row.addWidget(what, 1)  # wrapped: on one line it held the panel ~500 px wide and cut the map
        row.addWidget(self.stat)
        stats_layout.addLayout(row)
        stats_layout.addWidget(self.stats_plot)

        self.empty = QLabel("No attention captured yet. Tick “Capture attention maps” in the Sweep panel and press Run,\n"
                            "or open a run captured with `ctxscope sweep --attention`.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.grid)
        right.addWidget(stats_box)
        body = QSplitter()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.canvas, 1)
        left_layout.addWidget(self.readout)
        body.addWidget(left)
        body.addWidget(right)
        body.setSizes([700, 500])
        self.body = body
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.empty)
        layout.addWidget(body, 1)
        self._set_empty(True)

    # -- data ------------------------------------------------------------------------
    def clear(self) -> None:
        self.data = AttentionData()
        self.length.clear()
        self._set_empty(True)

    def add_result(self, result) -> None:
        self.data.add_result(result)
        self._sync_lengths()

    def set_stored(self, entries: list[dict], arrays: dict[str, np.ndarray]) -> None:
        self.data = AttentionData()
        self.data.add_stored(entries, arrays)
        self.length.clear()
        self._sync_lengths()

    def _sync_lengths(self) -> None:
        lengths = self.data.lengths()
        self._set_empty(not lengths)
        known = [self.length.itemData(i) for i in range(self.length.count())]
        self.length.blockSignals(True)
        for n in lengths:
            if n not in known:
                self.length.addItem(format_size(n), n)
        self.length.blockSignals(False)
        if self.length.currentIndex() < 0 and self.length.count():
            self.length.setCurrentIndex(0)
        self.refresh()

    def _set_empty(self, empty: bool) -> None:
        self.empty.setVisible(empty)
        self.body.setVisible(not empty)

    # -- view ------------------------------------------------------------------------
    def current(self) -> tuple[int, int, Layer] | None:
        length = self.length.currentData()
        if length is None:
            return None
        layers = self.data.layer_ids(length)
        if not layers:
            return None
        self.layer.blockSignals(True)
        self.layer.setRange(layers[0], layers[-1])
        self.layer.blockSignals(False)
        layer = self.layer.value() if self.layer.value() in layers else layers[0]
        return length, layer, self.data.layers[(length, layer)]

    def refresh(self) -> None:
        cur = self.current()
        if cur is None:
            return
        length, layer, la = cur
        heads = la.maps.shape[0]
        if self.head.count() != heads + 1:
            self.head.blockSignals(True)
            self.head.clear()
            self.head.addItem("mean of heads", -1)
            for h in range(heads):
                self.head.addItem(f"head {h}", h)
            self.head.blockSignals(False)
        head = self.head.currentData()
        shown = la.maps.mean(0) if head is None or head < 0 else la.maps[head]
        log = self.scale.currentText() == "log"
        img = np.log10(np.maximum(shown, 1e-6)) if log else shown
        self.image.setImage(img, autoLevels=False)
        lo, hi = (-6.0, 0.0) if log else (0.0, float(max(shown.max(), 1e-6)))
        self.colorbar.setLevels((lo, hi))
        self.colorbar.axis.setLabel("log₁₀ p" if log else "p")
        self.image.setRect(QRectF(0, 0, length, length))
        self.map_plot.setTitle(f"L={format_size(length)} · layer {layer} · {self.head.currentText()}")
        rows = sorted(la.profiles)
        if rows:
            profile = la.profiles[rows[-1]]
            y = profile.mean(0) if head is None or head < 0 else profile[head]
            self.profile_curve.setData(np.arange(len(y)) + 0.5, y)
            self.profile_plot.setLabel("left", f"p (query {rows[-1]})")
        span = self.data.spans.get(length)
        for region in (self.span_keys, self.span_queries, self.span_profile, self.needle_keys, self.needle_queries):
            region.setVisible(span is not None)
            if span is not None and isinstance(region, pg.LinearRegionItem):
                region.setRegion(span)
        if span is not None:
            self.needle_keys.setPos(span[1] + 0.01 * length, 0.02 * length)
            self.needle_queries.setPos(0.98 * length, span[0])
        self._refresh_grid(la, log)
        self._refresh_stats(layer, head)

    def _refresh_grid(self, la: Layer, log: bool) -> None:
        heads = la.maps.shape[0]
        if len(self.grid_images) != heads:
            self.grid.clear()
            self.grid_images = []
            cols = max(1, math.ceil(math.sqrt(heads)))
            for h in range(heads):  # a label row above each row of maps
                self.grid.addLabel(f"head {h}", row=2 * (h // cols), col=h % cols, size="8pt")
                vb = self.grid.addViewBox(row=2 * (h // cols) + 1, col=h % cols, lockAspect=True, enableMouse=False)
                vb.invertY(True)
                item = pg.ImageItem(axisOrder="row-major")
                item.mouseClickEvent = lambda ev, h=h: self.head.setCurrentIndex(h + 1)  # noqa: B023
                vb.addItem(item)
                self.grid_images.append(item)
        lut = pg.colormap.get("viridis").getLookupTable(nPts=256)
        for h, item in enumerate(self.grid_images):
            m = la.maps[h]
            if log:
                item.setImage(np.log10(np.maximum(m, 1e-6)), levels=(-6.0, 0.0), lut=lut)
            else:
                item.setImage(m, levels=(0.0, float(max(m.max(), 1e-6))), lut=lut)

    def _refresh_stats(self, layer: int, head: int | None) -> None:
        self.stats_plot.clear()
        name = self.stat.currentData()
        lengths = [n for n in self.data.lengths() if (n, layer) in self.data.layers]
        values = [self.data.layers[(n, layer)].stats.get(name) for n in lengths]
        pairs = [(n, v) for n, v in zip(lengths, values) if v]
        if not pairs:
            return
        x = np.array([n for n, _ in pairs], dtype=float)
        table = np.array([[np.nan if s is None else s for s in v] for _, v in pairs], dtype=float)  # [lengths, H]
        for h in range(table.shape[1]):
            width = 3 if h == head else 1
            self.stats_plot.plot(x, table[:, h], pen=pg.mkPen((150, 150, 150) if h != head else (255, 127, 14),
                                                               width=width))
        self.stats_plot.plot(x, np.nanmean(table, 1), pen=pg.mkPen((31, 119, 180), width=3), symbol="o", symbolSize=6)

    def _on_scene_mouse_moved(self, pos: QPointF) -> None:
        cur = self.current()
        if cur is None or not self.map_plot.sceneBoundingRect().contains(pos):
            return
        length, layer, la = cur
        p = self.map_plot.vb.mapSceneToView(pos)
        key, query = int(p.x()), int(p.y())
        if not (0 <= key < length and 0 <= query < length):
            return
        i = int(np.searchsorted(la.edges, query, side="right") - 1)
        j = int(np.searchsorted(la.edges, key, side="right") - 1)
        head = self.head.currentData()
        value = la.maps[:, i, j].mean() if head is None or head < 0 else la.maps[head, i, j]
        q0, q1, k0, k1 = la.edges[i], la.edges[i + 1], la.edges[j], la.edges[j + 1]
        text = f"queries {q0}–{q1 - 1} → keys {k0}–{k1 - 1}: mean mass {value:.4f}"
        tokens = self.data.tokens.get(length)
        if tokens is not None:
            def snippet(a: int, b: int) -> str:
                words = "".join(str(t) for t in tokens[a:min(b, a + 12)]).replace("Ġ", " ").replace("Ċ", "⏎")
                return words + ("…" if b - a > 12 else "")

            text += f"\nqueries: “{snippet(q0, q1)}”\nkeys: “{snippet(k0, k1)}”"
        self.readout.setText(text)

    def export_png(self, path: str | None = None) -> str | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export the attention view", filter="PNG image (*.png)")
            if not path:
                return None
        self.grab().save(path, "PNG")
        return path
