"""Plot axes against context length (ticks at powers of two) and log value axes that
read as plain numbers, dense enough to read a narrow range, never crowded."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

from ctxscope.report.axes import plain_number

#: The lengths an empty plot's axis spans (before a point, pyqtgraph's 1…10 read 2, 4, 8).
EMPTY_LENGTHS = (128, 4096)
#: Least room between two value labels, in pixels.
LABEL_GAP_PX = 20
# Mantissas per decade, finest first: the finest whose closest labels keep LABEL_GAP_PX
# apart wins (1, 2, 5 alone labelled a 4–25 ms axis only at 5, 10 and 20).
_MANTISSAS = ((1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9), (1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1, 3), (1,))


def _closest(mantissas: tuple[float, ...]) -> float:
    """The smallest gap between consecutive labels of one decade, in decades."""
    logs = [math.log10(m) for m in mantissas] + [1.0]
    return min(b - a for a, b in zip(logs, logs[1:]))


class LengthAxis(pg.AxisItem):
    """Context-length axis: ticks at powers of two labelled 512, 1k, 32k (log mode),
    where pyqtgraph's decimal log ticks would read 5·10², 10³, 3·10⁴ and collide."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:  # noqa: N802 (pyqtgraph API)
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        lo, hi = int(np.floor(minVal / np.log10(2))), int(np.ceil(maxVal / np.log10(2)))
        exps = [k for k in range(lo, hi + 1) if minVal <= k * np.log10(2) <= maxVal]
        step = max(1, int(np.ceil(len(exps) * 60 / max(size, 1))))  # keep ≥ ~60 px between labels
        major = [k * np.log10(2) for k in exps if k % step == 0]
        minor = [k * np.log10(2) for k in exps if k % step != 0]
        return [(step * np.log10(2), major), (np.log10(2), minor)]

    def tickStrings(self, values: list, scale: float, spacing: float) -> list[str]:  # noqa: N802
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        from ctxscope.core.lengths import format_size

        return [format_size(int(round(10**v))) if 10**v >= 1 else "" for v in values]


class LogValueAxis(pg.AxisItem):
    """A value axis that, in log mode, ticks at "nice" mantissas × 10ᵏ in plain numbers
    (0.5, 1, 1.5, 2, 10k: never 9·10² or 1e+04), as many as fit."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:  # noqa: N802 (pyqtgraph API)
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        lo, hi = int(np.floor(minVal)), int(np.ceil(maxVal))
        per_decade = max(size, 1) / max(maxVal - minVal, 1e-9)  # pixels
        mantissas = next((m for m in _MANTISSAS if _closest(m) * per_decade >= LABEL_GAP_PX), (1,))
        values = [float(np.log10(m)) + k for k in range(lo, hi + 1) for m in mantissas]
        values = [v for v in values if minVal <= v <= maxVal]
        while len(values) > 2 and per_decade * (values[1] - values[0]) < LABEL_GAP_PX:
            values = values[::2]  # whole decades only, every other one
        return [(1.0, values)]

    def tickStrings(self, values: list, scale: float, spacing: float) -> list[str]:  # noqa: N802
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [plain_number(float(10 ** v * scale)) for v in values]
