"""Stacked memory breakdown (weights / KV cache / state / activations) of one run and mode,
with the device capacity as a line and out-of-memory points marked."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from ctxscope.core.results import Point
from ctxscope.core.units import GIB
from ctxscope.gui.plots import INVISIBLE, _ContextPlot, _Series
from ctxscope.report.compare import peak_bytes
from ctxscope.report.fmt import fmt_bytes

LAYERS = (("weights", (120, 120, 120)), ("KV cache", (31, 119, 180)), ("state", (39, 174, 96)),
          ("activations", (255, 127, 14)))
STATE = 2  # the recurrent state's layer: listed only once a run has one


class _FixedSample(pg.ItemSample):
    """A legend swatch that does not toggle its item on a click (the layers are one
    stack: hiding one would misstate the others)."""

    def mouseClickEvent(self, event) -> None:  # noqa: N802 (pyqtgraph API)
        event.ignore()


class MemoryPlot(_ContextPlot):
    """Shows the first run only (stacks of several runs would hide each other)."""

    y_label = "memory (GiB)"
    legend_offset = (-8, -40)  # bottom right: the stack grows at the top

    def __init__(self) -> None:
        super().__init__("Memory")
        self.setToolTip("Stacked: weights + KV cache + state + activations = peak of the pass (GPU: allocator "
                        "peak; CPU: model peak, from the CPU allocator).\nState: the recurrent and convolution state "
                        "of state-space and linear-attention layers (fixed in L).\nThe dashed line is the device's "
                        "capacity; ✕ marks out-of-memory.")
        self.getAxis("left").enableAutoSIPrefix(False)
        self.mode = "prefill"
        self.capacity = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen((192, 57, 43), width=1.5,
                                                                             style=pg.QtCore.Qt.PenStyle.DashLine),
                                        label="", labelOpts={"position": 0.05, "color": (192, 57, 43)})
        self.capacity.setVisible(False)
        self.addItem(self.capacity, ignoreBounds=True)
        # Unnamed: a named item joins the legend at once; it is listed when a ✕ is drawn.
        self.oom = pg.ScatterPlotItem(symbol="x", size=14, pen=pg.mkPen((192, 57, 43), width=2), brush=None)
        self.addItem(self.oom)
        self._legend_done = False
        self._state_listed = False
        self.prediction = None  # analytic weights + KV (dashed)
        self.trial_fit = self.trial_fail = self.budget_line = None  # Find max context

    def _label_first_run(self) -> None:
        """Its legend names the memory layers, not runs (only the first run is drawn)."""

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        for (run_key, mode_), series in self.series.items():
            visible = self._drawn(run_key, mode_)
            if visible and not series.items:  # first shown now: its items, from its points
                series.items = self._make_items(self.run_labels[run_key], mode_, 0)
                self._update(series)
            for item in series.items:
                item.setVisible(visible)
        self._update_oom()
        self.fit(snug=True)  # the other mode's stack has its own range

    def _drawn(self, run_key: str, mode: str) -> bool:
        # Only the first run's stack in the chosen mode is drawn: the others' 14 items each
        # are built when a change of mode shows them (building and updating hidden stacks
        # was half of this plot's work during a sweep).
        return mode == self.mode and self.run_order.index(run_key) == 0

    def _y_room(self) -> float:
        # The stack grows slowly (the weights are most of it); a device's capacity line in
        # view is the top that matters: no room above it.
        if self.capacity.isVisible() and self.capacity in self.getPlotItem().vb.addedItems:
            return 0.0
        return 0.25

    def set_capacity(self, total_bytes: int | None, label: str = "device memory", *, in_view: bool = True) -> None:
        """The capacity line; ``in_view`` keeps it inside the auto-range (a GPU's memory
        is the limit that matters; a CPU host's RAM would squash the stack to a sliver)."""
        self.removeItem(self.capacity)
        self.addItem(self.capacity, ignoreBounds=not in_view)
        self.capacity.setVisible(total_bytes is not None)
        if total_bytes is not None:
            self.capacity.setValue(total_bytes / GIB)
            self.capacity.label.setFormat(f"{label} {fmt_bytes(total_bytes)}")

    def set_prediction(self, lengths: list[int], predicted_bytes: list[int]) -> None:
        """The analytic weights + KV cache (dashed): where the stack departs from it, the
        measurement and the model disagree (activations sit on top by design)."""
        if self.prediction is not None:
            self.removeItem(self.prediction)
        self.prediction = None
        if lengths:
            self.data_arrived()
            self.prediction = self.plot(np.array(lengths, dtype=float), np.array(predicted_bytes, dtype=float) / GIB,
                                        pen=pg.mkPen((90, 90, 90), width=1.5, style=Qt.PenStyle.DashLine),
                                        name="predicted weights + KV")

    def show_trials(self, trials: list, budget_bytes: int | None) -> None:
        """Max-context trials: ● a length that ran (at its peak), ✕ one that did not (at
        the budget line), the budget as a dashed line."""
        for name in ("trial_fit", "trial_fail", "budget_line"):
            old = getattr(self, name)
            if old is not None:
                self.removeItem(old)
            setattr(self, name, None)
        if not trials:
            return
        self.data_arrived()
        if budget_bytes:
            self.budget_line = pg.InfiniteLine(budget_bytes / GIB, angle=0, pen=pg.mkPen((142, 68, 173), width=1.5,
                                               style=Qt.PenStyle.DashLine), label=f"budget {fmt_bytes(budget_bytes)}",
                                               labelOpts={"position": 0.1, "color": (142, 68, 173)})
            self.addItem(self.budget_line)
        fits = [p for p in trials if p.fits and p.peak_bytes is not None]
        fails = [p for p in trials if not p.fits]
        self.trial_fit = self.plot([p.length for p in fits], [p.peak_bytes / GIB for p in fits], pen=None,
                                   symbol="o", symbolSize=9, symbolBrush=(39, 174, 96), name="trial ran")
        top = budget_bytes / GIB if budget_bytes else max([p.peak_bytes / GIB for p in fits] or [0.0])
        self.trial_fail = self.plot([p.length for p in fails], [top] * len(fails), pen=None, symbol="x",
                                    symbolSize=12, symbolBrush=(192, 57, 43), symbolPen=(192, 57, 43),
                                    name="trial did not fit")

    def clear_runs(self) -> None:
        self.show_trials([], None)
        self.set_prediction([], [])
        super().clear_runs()
        self.oom.setData([], [])
        self._legend_done = False
        self._state_listed = False

    def add_point(self, run_key: str, label: str, point: Point) -> None:
        super().add_point(run_key, label, point)
        self._update_oom()

    def _make_items(self, label: str, mode: str, run_index: int) -> list:
        curves = []
        for i, (name, color) in enumerate(LAYERS):
            # Markers on the top of the stack only (the peak of the pass, at every measured
            # length): on every layer they were two thirds of a point's plot update.
            marks = {"symbol": "o", "symbolSize": 5, "symbolBrush": color} if i == len(LAYERS) - 1 else {}
            curves.append(self.plot([], [], pen=pg.mkPen(color, width=1.5), **marks))
        fills = [pg.FillBetweenItem(self.plot([], [], pen=pg.mkPen(INVISIBLE)), curves[0],
                                    brush=pg.mkBrush(*LAYERS[0][1], 90))]
        zero = fills[0].curves[0]
        for i in range(1, len(LAYERS)):
            fills.append(pg.FillBetweenItem(curves[i - 1], curves[i], brush=pg.mkBrush(*LAYERS[i][1], 90)))
        for fill in fills:
            self.addItem(fill, ignoreBounds=True)
        self.build_legend()
        return [*curves, zero, *fills]

    def build_legend(self) -> None:
        """The layers' legend entries (the same for every run), once per clear: a sweep
        builds them in a scheduler tick of their own, before its first point."""
        if self._legend_done:
            return
        # Proxies, not the curves: the curves of the first series hide when another
        # mode is shown, and a hidden item's swatch is drawn as a black "hidden" icon.
        for i, (name, color) in enumerate(LAYERS):
            if i != STATE:  # the state is listed once a run has one
                self.legend.addItem(_FixedSample(self._proxy(color)), name)
        self._legend_done = True

    @staticmethod
    def _proxy(color: tuple[int, int, int]) -> pg.PlotDataItem:
        return pg.PlotDataItem(pen=pg.mkPen(color, width=1.5))

    def _update(self, series: _Series) -> None:
        ok = [p for p in series.ok() if p.memory is not None]
        x = np.array([p.length for p in ok], dtype=float)
        w = np.array([p.memory.weights_bytes for p in ok], dtype=float) / GIB
        k = w + np.array([p.memory.kv_cache_bytes for p in ok], dtype=float) / GIB
        st = k + np.array([p.memory.state_bytes or 0 for p in ok], dtype=float) / GIB
        a = st + np.array([max(0, p.memory.activation_bytes or 0) for p in ok], dtype=float) / GIB
        n = len(LAYERS)
        curves, zero = series.items[:n], series.items[n]
        zero.setData(x, np.zeros_like(x))
        for curve, y in zip(curves, (w, k, st, a)):
            curve.setData(x, y)
        if bool((st > k).any()) and not self._state_listed:
            self.legend.addItem(_FixedSample(self._proxy(LAYERS[STATE][1])), LAYERS[STATE][0])
            self._state_listed = True

    def _update_oom(self) -> None:
        xs, ys = [], []
        top = self.capacity.value() if self.capacity.isVisible() else None
        for (run_key, mode), series in self.series.items():
            if mode != self.mode or self.run_order.index(run_key) != 0:
                continue
            peak = max([self._y(p) for p in series.ok() if p.memory] or [0.0])
            for p in series.points.values():
                if p.status == "oom":
                    xs.append(np.log10(p.length) if self.getPlotItem().ctrl.logXCheck.isChecked() else p.length)
                    ys.append(top if top is not None else peak)
        self.oom.setData(xs, ys)
        # The ✕ is explained only where one is drawn (an empty plot's legend said only
        # "out of memory").
        listed = self.legend.getLabel(self.oom) is not None
        if xs and not listed:
            self.legend.addItem(self.oom, "out of memory")
        elif not xs and listed:
            self.legend.removeItem(self.oom)

    def _y(self, point: Point) -> float:
        m = point.memory
        return (m.weights_bytes + m.kv_cache_bytes + (m.state_bytes or 0) + max(0, m.activation_bytes or 0)) / GIB

    def _describe(self, run_key: str, p: Point) -> str:
        m = p.memory
        state = f"\nstate {fmt_bytes(m.state_bytes)}" if m.state_bytes else ""
        name = "allocator peak" if m.peak_allocated_bytes is not None else "model peak"
        return (f"{p.mode} L={p.length}\nweights {fmt_bytes(m.weights_bytes)}\nKV cache {fmt_bytes(m.kv_cache_bytes)}"
                f"{state}\nactivations {fmt_bytes(m.activation_bytes)}\n{name} {fmt_bytes(peak_bytes(m))}")
