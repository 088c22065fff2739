"""Scrolling sparklines: GPU utilisation, memory, power, temperature (NVML) and CPU /
RSS (psutil), live whether or not a sweep runs. Without NVIDIA, CPU and RSS only."""

from __future__ import annotations

from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ctxscope.core.machine.telemetry import TelemetrySample, TelemetrySampler

HISTORY = 300  # samples kept per sparkline (60 s at 5 Hz)
FIELDS = (("gpu_util_percent", "GPU util", "{:.0f} %", 1.0), ("gpu_memory_used_bytes", "GPU memory", "{:.2f} GiB", 2**30),
          ("power_w", "power", "{:.0f} W", 1.0), ("temperature_c", "GPU temp", "{:.0f} °C", 1.0),
          ("cpu_percent", "CPU", "{:.0f} %", 1.0), ("rss_bytes", "RSS", "{:.2f} GiB", 2**30))


class _Sparkline(QWidget):
    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title
        self.label = QLabel(f"{title}: –")
        self.plot = pg.PlotWidget()
        self.plot.setFixedHeight(38)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        # A 1 px (cosmetic) line: at 1.5 px, antialiased, the six sparklines' repaints were
        # 5-6 ms of every 200 ms sample on a 2-core CPU; 2 ms now.
        self.curve = self.plot.plot([], [], pen=pg.mkPen((31, 119, 180), width=1))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.setSpacing(0)
        layout.addWidget(self.label)
        layout.addWidget(self.plot)
        self.values: deque[float] = deque(maxlen=HISTORY)


class TelemetryStrip(QWidget):
    """Samples on a UI-thread timer (each reading takes well under a millisecond). GPU
    fields follow :meth:`set_device` (the GPU the user picked or the model occupies,
    by UUID); until one is known, CPU and RSS only."""

    def __init__(self, parent: QWidget | None = None, *, interval_ms: int = 200) -> None:
        super().__init__(parent)
        self.sampler = TelemetrySampler(hz=0)  # no thread: the timer polls
        # Built when their field is first shown: each sparkline is a plot (~25 ms to build),
        # and without a GPU four of the six never are.
        self.sparks: dict[str, _Sparkline] = {}
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.note = QLabel("No GPU telemetry: CPU and process memory only (NVIDIA GPUs appear once one is picked).")
        self.note.setWordWrap(True)
        self._layout.addWidget(self.note, 1)
        self.set_device(())
        self.interval = interval_ms / 1000
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.timer.start(interval_ms)

    def set_device(self, uuids: tuple[str, ...] | list[str]) -> None:
        """Show the GPUs with these UUIDs (empty: none); fields NVML cannot read hide."""
        self.sampler.set_uuids(tuple(uuids))
        first = self.sampler.sample()
        self.fields = [f for f in FIELDS if getattr(first, f[0]) is not None]
        shown = {name for name, *_ in self.fields}
        for name in shown:
            self._spark(name)
        for name, spark in self.sparks.items():
            spark.setVisible(name in shown)
            if name not in shown:
                spark.values.clear()
        self.note.setVisible(not any(name.startswith("gpu") for name in shown))

    def _spark(self, name: str) -> _Sparkline:
        """The sparkline of ``name``, built (in FIELDS order, before the note) if new."""
        if name not in self.sparks:
            order = [n for n, *_ in FIELDS]
            title = next(t for n, t, *_ in FIELDS if n == name)
            index = sum(order.index(n) < order.index(name) for n in self.sparks)
            self.sparks[name] = _Sparkline(title)
            self._layout.insertWidget(index, self.sparks[name], 1)
        return self.sparks[name]

    def add_sample(self, sample: TelemetrySample) -> None:
        for name, title, fmt, scale in self.fields:
            value = getattr(sample, name)
            if value is None:
                continue
            spark = self.sparks[name]
            spark.values.append(value / scale)
            spark.label.setText(f"{title}: {fmt.format(value / scale)}")
            spark.curve.setData(np.fromiter(spark.values, dtype=float))

    def _on_timer_timeout(self) -> None:
        self.add_sample(self.sampler.sample())
