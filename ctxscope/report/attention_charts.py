"""Attention charts for reports: statistics against L (inline SVG) and pooled maps as
PNG data URIs, one pixel per tile."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

from ctxscope.core.blocks import AttentionEntry
from ctxscope.report.axes import legend, length_axis, marker_size, thin
from ctxscope.report.charts import PALETTE, _figure, _styled, _to_svg


@_styled
def attention_stats_svg(entries: Sequence[AttentionEntry], *, title: str) -> str | None:
    """Per-head statistics averaged over heads and layers, against L."""
    names = [("entropy", "normalised entropy"), ("sink_mass", "sink mass"), ("local_mass", "local mass"),
             ("span_mass", "needle mass")]
    by_length: dict[str, dict[int, list[float]]] = {n: {} for n, _ in names}
    for e in entries:
        if e.get("status") != "ok":
            continue
        for name, _ in names:
            values = [v for v in (e.get("stats") or {}).get(name) or [] if isinstance(v, (int, float))]
            if values:
                by_length[name].setdefault(int(e["length"]), []).extend(values)
    if not any(by_length.values()):
        return None
    fig, ax = _figure(6.4, 3.0)
    lengths: list[int] = []
    for i, (name, label) in enumerate(names):
        data = by_length[name]
        if data:
            xs = sorted(data)
            lengths += xs
            x, y = thin(xs, [float(np.mean(data[n])) for n in xs])
            ax.plot(x, y, "o-", color=PALETTE[i], markersize=marker_size(len(x)), label=label)
    length_axis(ax, lengths)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("mean over heads and layers")
    ax.set_title(title)
    legend(ax, fontsize=8)
    return _to_svg(fig)


def heatmap_png(image: np.ndarray, *, span_tiles: tuple[int, int] | None = None) -> str:
    """A pooled attention map as a PNG data URI, one pixel per tile (the page scales it
    up without smoothing), log colour scale; the needle's key tiles tinted red."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.image import imsave

    data = np.asarray(image, dtype=np.float64)
    positive = data[data > 0]
    vmax = float(positive.max()) if positive.size else 1.0
    vmin = max(float(positive.min()) if positive.size else vmax * 1e-6, vmax * 1e-6)
    rgba = colormaps["viridis"](LogNorm(vmin=vmin, vmax=vmax, clip=True)(np.where(data > 0, data, vmin)))
    rgba[data <= 0] = (0.93, 0.93, 0.93, 1.0)  # masked (future keys): light grey
    if span_tiles is not None:
        a, b = span_tiles
        rgba[:, a:b, :3] = 0.6 * rgba[:, a:b, :3] + 0.4 * np.array([1.0, 0.23, 0.19])
    buf = io.BytesIO()
    imsave(buf, rgba, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
