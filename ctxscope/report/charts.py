"""Report charts: matplotlib figures rendered to inline SVG (vector, no external
resources); attention's are in :mod:`ctxscope.report.attention_charts`, quality's in
:mod:`ctxscope.report.quality_charts`.

matplotlib is used through ``Figure`` directly, never pyplot: no global state, no GUI
backend, safe from any thread. Text stays text (``svg.fonttype: none``) and matplotlib
escapes it, so user-controlled names cannot inject markup; mathtext is off, so a name
with ``$`` in it (a folder ``ckpt_$step^$``) is drawn as written instead of failing to
parse. A chart with nothing to show is not drawn (its function returns ``None``), and
curves of large runs are decimated for drawing (see :mod:`ctxscope.report.axes`)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from ctxscope.core.results import Point
from ctxscope.report.axes import (legend, length_axis, log_y, marker_size, thin, thin_band, thin_rows)
from ctxscope.report.compare import Comparison, peak_bytes, peak_heading
from ctxscope.core.units import GIB, fmt_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

    from ctxscope.core.predict.efficiency import LatencyFit

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
LAYER_COLOURS = {"weights": "#7f8c8d", "KV cache": "#2980b9", "state": "#27ae60", "activations": "#e67e22"}
_RC: dict[RcKeyType, Any] = {"svg.fonttype": "none", "svg.hashsalt": "ctxscope", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
       "font.family": "sans-serif",
       # Every string in a chart is plain text: model paths and labels may hold "$".
       "text.parse_math": False, "text.usetex": False}


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _styled(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Apply the report style while a chart is built (font sizes are fixed at creation)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        import matplotlib

        with matplotlib.rc_context(_RC):
            return fn(*args, **kwargs)

    return wrapper


def missing_dependency() -> str | None:
    """``None`` when charts can be drawn, else the one-line reason."""
    import importlib.util

    missing = [m for m in ("matplotlib", "jinja2") if importlib.util.find_spec(m) is None]
    if missing:
        return f"HTML reports need {' and '.join(missing)}: pip install {' '.join(missing)}"
    return None


@dataclass(frozen=True, slots=True)
class Series:
    """One run's points of one mode, with its legend label and colour."""

    label: str
    colour: str
    points: tuple[Point, ...]


def _figure(width: float = 6.4, height: float = 3.4) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _to_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    # Inline SVG needs neither the XML prolog nor the DTD reference.
    text = re.sub(r"^<\?xml[^>]*\?>\s*", "", text)
    return re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)


def _mark_oom(ax: Axes, lengths: list[int], colour: str, label: str | None) -> None:
    if lengths:
        lengths = sorted(set(lengths))
        ax.scatter(lengths, [0.97] * len(lengths), marker="x", s=40, color=colour, transform=ax.get_xaxis_transform(),
                   label=label, zorder=5, clip_on=False)


def _ok(points: Sequence[Point], attr: str = "latency_ms") -> list[Point]:
    return sorted((p for p in points if p.status == "ok" and getattr(p, attr)), key=lambda p: p.length)


@dataclass(frozen=True, slots=True)
class Overlay:
    """Prediction and fit drawn over one run's latency curve. ``fit`` is drawn only when
    it is a model worth showing (enough lengths, physical coefficients)."""

    predicted: dict[int, float]  # length → roofline lower bound (ms)
    fit: LatencyFit | None


@_styled
def latency_svg(series: Sequence[Series], mode: str, *, title: str,
                overlays: Sequence[Overlay | None] | None = None) -> str | None:
    """Median latency per length with the p10–p90 band; ✕ where a run ran out of memory;
    optionally each run's roofline lower bound (dashed) and fit a + bL + cL² (dotted).
    ``None`` when no run has a point of this mode that ran or ran out of memory."""
    if not any(_ok(s.points) or any(p.status == "oom" for p in s.points) for s in series):
        return None
    fig, ax = _figure()
    lengths: list[int] = []
    for i, s in enumerate(series):
        overlay = overlays[i] if overlays else None
        if overlay is not None:
            _draw_overlay(ax, s, overlay)
        ok = [(p.length, p.latency_ms) for p in _ok(s.points) if p.latency_ms is not None]
        lengths += [p.length for p in s.points]
        if ok:
            x = [n for n, _ in ok]
            bx, lo, hi = thin_band(x, [lat.p10 for _, lat in ok], [lat.p90 for _, lat in ok])
            ax.fill_between(bx, lo, hi, color=s.colour, alpha=0.2, linewidth=0)
            mx, my = thin(x, [lat.median for _, lat in ok])
            ax.plot(mx, my, "o-", color=s.colour, markersize=marker_size(len(mx)), label=s.label)
        _mark_oom(ax, [p.length for p in s.points if p.status == "oom"], s.colour, f"{s.label}: out of memory")
    length_axis(ax, lengths)
    log_y(ax)
    ax.set_ylabel("per-token latency (ms)" if mode == "decode" else "latency per call (ms)")
    ax.set_title(title)
    legend(ax, fontsize=8)
    return _to_svg(fig)


def _draw_overlay(ax: Axes, s: Series, overlay: Overlay) -> None:
    if overlay.predicted:
        xs, ys = thin(sorted(overlay.predicted), [overlay.predicted[n] for n in sorted(overlay.predicted)])
        ax.plot(xs, ys, "--", color=s.colour, linewidth=1, alpha=0.8, label=f"{s.label}: roofline lower bound")
    fit = overlay.fit
    ok = [p.length for p in s.points if p.status == "ok"]
    if fit is None or not ok or not getattr(fit, "physical", True):
        return  # too few lengths or impossible coefficients: the report says so in its table
    xs = np.geomspace(min(ok), max(ok), 64)
    ax.plot(xs, [fit(x) for x in xs], ":", color=s.colour, linewidth=1.4,
            label=f"{s.label}: fit a + bL + cL² (R² {fit.r2:.3f}, {fit.n} lengths)")
    if fit.crossover and min(ok) / 4 <= fit.crossover <= max(ok) * 4:
        ax.axvline(fit.crossover, color=s.colour, linewidth=0.8, alpha=0.6)
        ax.annotate(f"cL² = bL at L≈{fit.crossover:,.0f}", (fit.crossover, 0.04),
                    xycoords=ax.get_xaxis_transform(), fontsize=7, color=s.colour, rotation=90, ha="right")


@_styled
def throughput_svg(series: Sequence[tuple[Series, str]], *, title: str) -> str | None:
    """Tokens per second; solid lines prefill/forward, dashed decode (``None``: no data)."""
    drawn = [(s, mode, _ok(s.points, "tokens_per_s")) for s, mode in series]
    if not any(ok for _, _, ok in drawn):
        return None
    fig, ax = _figure()
    lengths: list[int] = []
    for s, mode, ok in drawn:
        lengths += [p.length for p in ok]
        if ok:
            rates = [(p.length, p.tokens_per_s) for p in ok if p.tokens_per_s is not None]
            x, y = thin([n for n, _ in rates], [r for _, r in rates])
            ax.plot(x, y, "o--" if mode == "decode" else "o-", color=s.colour, markersize=marker_size(len(x), 3),
                    label=f"{s.label} {mode}")
    length_axis(ax, lengths)
    log_y(ax)
    ax.set_ylabel("tokens / s")
    ax.set_title(title)
    legend(ax, fontsize=8)
    return _to_svg(fig)


def _capacity_line(ax: Axes, capacity: int, label: str, top_gib: float, always: bool) -> None:
    # A capacity far above the data would flatten it to the axis: say it in words instead.
    if always or top_gib >= 0.3 * capacity / GIB:
        ax.axhline(capacity / GIB, color="#c0392b", linestyle=":", linewidth=1.5, label=f"{label} {fmt_bytes(capacity)}")
    else:
        ax.text(0.99, 0.02, f"{label} {fmt_bytes(capacity)} (off the scale)", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="#c0392b")


@_styled
def memory_svg(points: Sequence[Point], *, title: str, capacity: int | None, capacity_label: str,
               predicted: dict[int, int] | None = None) -> str | None:
    """One run's memory per length, stacked: weights, KV cache, state, activations (GiB), with
    the device capacity, the out-of-memory boundary and the analytic weights + KV
    (``None`` when no point has memory figures)."""
    ok = _ok(points, "memory")
    oom = sorted(p.length for p in points if p.status == "oom")
    if not ok and not oom:
        return None
    fig, ax = _figure()
    top = 0.0
    if ok:
        mem = [p.memory for p in ok if p.memory is not None]  # all of them: _ok kept those with memory
        w = np.array([m.weights_bytes for m in mem], dtype=np.float64) / GIB
        k = np.array([m.kv_cache_bytes for m in mem], dtype=np.float64) / GIB
        st = np.array([m.state_bytes or 0 for m in mem], dtype=np.float64) / GIB
        a = np.array([max(0, m.activation_bytes or 0) for m in mem], dtype=np.float64) / GIB
        keep = thin_rows([p.length for p in ok], w + k + st + a)
        x = [ok[i].length for i in keep]
        # The recurrent state only where the model has one (a transformer's legend stays as it was).
        parts = [(name, values[keep]) for name, values in zip(LAYER_COLOURS, (w, k, st, a)) if name != "state" or st.any()]
        if len(x) == 1:  # a stacked area of one length has no width: one stacked bar instead
            bottom = 0.0
            for name, part in parts:
                ax.bar(x, part, width=x[0] * 0.35, bottom=bottom, color=LAYER_COLOURS[name], alpha=0.85, label=name)
                bottom += float(part[0])
            ax.set_xlim(x[0] / 2, x[0] * 2)
        else:
            ax.stackplot(x, *[v for _, v in parts], labels=[n for n, _ in parts],
                         colors=[LAYER_COLOURS[n] for n, _ in parts], alpha=0.85)
        top = float((w + k + st + a).max())
    if predicted:
        px, py = thin(sorted(predicted), [predicted[n] / GIB for n in sorted(predicted)])
        ax.plot(px, py, "k--", linewidth=1.2, label="predicted weights + KV")
    if capacity:
        _capacity_line(ax, capacity, capacity_label, top, capacity_label == "device memory")
    ax.set_ylim(bottom=0)
    if oom:
        ax.axvline(oom[0], color="#c0392b", linewidth=1, label=f"out of memory from L={oom[0]:,}")
    length_axis(ax, [p.length for p in points])
    ax.set_ylabel("memory (GiB)")
    ax.set_title(title)
    legend(ax, fontsize=8, loc="upper left")
    return _to_svg(fig)


@_styled
def peak_memory_svg(cmp: Comparison, mode: str, *, title: str) -> str | None:
    """Peak memory per length (allocator peak on GPU, model peak on CPU), one line per
    run, with each distinct device capacity (``None`` when no run has memory figures)."""
    per_run = [[p for p in run.points if p.mode == mode] for run in cmp.runs]
    if not any(_ok(pts, "memory") or any(p.status == "oom" for p in pts) for pts in per_run):
        return None
    fig, ax = _figure()
    lengths: list[int] = []
    top = 0.0
    for i, pts in enumerate(per_run):
        colour = PALETTE[i % len(PALETTE)]
        ok = _ok(pts, "memory")
        lengths += [p.length for p in pts]
        if ok:
            peaks = [(p.length, peak) for p in ok if (peak := peak_bytes(p.memory)) is not None]
            x, y = thin([n for n, _ in peaks], [b / GIB for _, b in peaks])
            top = max(top, float(y.max()))
            ax.plot(x, y, "o-", color=colour, markersize=marker_size(len(x)), label=cmp.labels[i])
        _mark_oom(ax, [p.length for p in pts if p.status == "oom"], colour, None)
    for cap in sorted({c for r in cmp.runs if (c := r.header.environment.gpu_memory_bytes) is not None}):
        _capacity_line(ax, cap, "GPU", top, False)
    length_axis(ax, lengths)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(f"{peak_heading(cmp.runs)} (GiB)")
    ax.set_title(title)
    legend(ax, fontsize=8, loc="upper left")
    return _to_svg(fig)


@_styled
def ratio_svg(cmp: Comparison, mode: str, *, title: str) -> str | None:
    """Median latency of each run divided by the baseline's, per length (1 = same);
    ``None`` when no length has a ratio (e.g. the baseline has no point of this mode)."""
    rows = cmp.rows_of(mode)
    curves = []
    for i in range(len(cmp.runs)):
        pairs = [(r.length, ratio) for r in rows if (ratio := r.cells[i].latency_ratio) is not None]
        if i != cmp.baseline and pairs:
            curves.append((i, pairs))
    if not curves:
        return None
    fig, ax = _figure(6.4, 2.6)
    for i, pairs in curves:
        x, y = thin([n for n, _ in pairs], [v for _, v in pairs])
        ax.plot(x, y, "o-", color=PALETTE[i % len(PALETTE)], markersize=marker_size(len(x)), label=cmp.labels[i])
    ax.axhline(1.0, color="#555555", linewidth=1)
    length_axis(ax, [r.length for r in rows])
    ax.set_ylabel(f"latency ÷ {cmp.labels[cmp.baseline]}")
    ax.set_title(title)
    legend(ax, fontsize=8)
    return _to_svg(fig)
