"""Chart helpers shared by the report's figures: readable log axes, a legend only when
something is labelled, and decimation that keeps large runs fast to draw without
hiding their extremes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Above this many points a curve is decimated before drawing (min/max per bin).
MAX_DRAWN = 600
#: Curves with more points than this are drawn without markers (they would be a smear).
MAX_MARKERS = 60

# Mantissas from coarse to fine: the first set that puts three or more ticks on the
# axis wins, so a narrow range still gets labelled ticks (not a lone "10⁰").
_MANTISSAS = ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
              (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))
_MAX_TICKS = 9


def plain_number(value: float) -> str:
    """Tick text without exponents: 0.02, 300, 1.5k, 2M."""
    if value <= 0 or not math.isfinite(value):
        return f"{value:g}"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if value >= div:
            return f"{value / (div if unit != 'k' else 1e3):g}{unit}"
    return np.format_float_positional(value, precision=4, unique=True, trim="-")


def log_ticks(lo: float, hi: float) -> list[float]:
    """Three to nine "nice" ticks (1-2-5 style) inside [lo, hi] on a log axis."""
    if not (0 < lo < hi and math.isfinite(hi)):
        return []
    first, last = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    for mantissas in _MANTISSAS:
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in mantissas if lo <= m * 10.0**e <= hi]
        if len(ticks) > _MAX_TICKS:
            step = math.ceil(len(ticks) / _MAX_TICKS)
            ticks = ticks[::step]
        if len(ticks) >= 3:
            return ticks
    from matplotlib.ticker import MaxNLocator

    # A range narrower than 1 → 1.2: evenly spaced ticks read better than none.
    return [float(t) for t in MaxNLocator(4).tick_values(lo, hi) if lo <= t <= hi and t > 0]


def log_y(ax: Axes) -> None:
    """Log y axis with enough plain-number ticks (30, 100, 300 rather than 3×10¹)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ticks = log_ticks(lo, hi)
    if ticks:
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: plain_number(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def length_axis(ax: Axes, lengths: Sequence[int]) -> None:
    """Log₂ context axis, ticks at powers of two that the data spans (1k, 2k, ...)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log", base=2)
    ticks = sorted({2 ** round(math.log2(n)) for n in set(lengths) if n > 0})
    if len(ticks) > 12:
        ticks = ticks[:: math.ceil(len(ticks) / 12)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: short_length(int(round(v)))))
    ax.set_xlabel("context length L (tokens)")


def short_length(n: int) -> str:
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}k"
    return str(n)


def legend(ax: Axes, **kwargs: Any) -> None:
    """A legend only when something carries a label (matplotlib warns otherwise)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def marker_size(count: int, size: float = 3.5) -> float:
    return size if count <= MAX_MARKERS else 0.0


def _bins(x: np.ndarray, limit: int) -> list[np.ndarray]:
    """Index groups of consecutive points, equal widths on a log axis."""
    edges = np.geomspace(x[0], x[-1] * (1 + 1e-12), limit // 2 + 1)
    which = np.searchsorted(edges, x, side="right")
    cuts = np.flatnonzero(np.diff(which)) + 1
    return np.split(np.arange(len(x)), cuts)


def thin(xs: Sequence[float], ys: Sequence[float], limit: int = MAX_DRAWN) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``limit`` points of a curve sorted by x: per bin, the lowest and the
    highest point in their own order, so every extreme stays on the chart."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(x) <= limit or x[0] <= 0:
        return x, y
    keep: list[int] = []
    for idx in _bins(x, limit):
        lo, hi = idx[np.argmin(y[idx])], idx[np.argmax(y[idx])]
        keep.extend(sorted({int(lo), int(hi)}))
    return x[keep], y[keep]


def thin_band(xs: Sequence[float], lows: Sequence[float], highs: Sequence[float],
              limit: int = MAX_DRAWN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A band (p10–p90) decimated honestly: per bin, from its first to its last length,
    the lowest low and the highest high of the points in it."""
    x, lo, hi = (np.asarray(v, dtype=float) for v in (xs, lows, highs))
    if len(x) <= limit or x[0] <= 0:
        return x, lo, hi
    bx, blo, bhi = [], [], []
    for idx in _bins(x, limit):
        low, high = float(lo[idx].min()), float(hi[idx].max())
        bx += [x[idx[0]], x[idx[-1]]]
        blo += [low, low]
        bhi += [high, high]
    return np.array(bx), np.array(blo), np.array(bhi)


def thin_rows(xs: Sequence[float], totals: Sequence[float] | np.ndarray, limit: int = MAX_DRAWN) -> list[int]:
    """Indices to keep of stacked series: per bin the points with the smallest and the
    largest total."""
    x, t = np.asarray(xs, dtype=float), np.asarray(totals, dtype=float)
    if len(x) <= limit or x[0] <= 0:
        return list(range(len(x)))
    keep: list[int] = []
    for idx in _bins(x, limit):
        keep.extend(sorted({int(idx[np.argmin(t[idx])]), int(idx[np.argmax(t[idx])])}))
    return keep
