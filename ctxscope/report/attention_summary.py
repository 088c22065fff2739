"""Attention for reports: which lengths and layers to show, their pooled maps as
thumbnails (mean over heads). Reads the run's ``.npz`` without unpickling; torch-free."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctxscope.core.errors import RunFileError
from ctxscope.core.results import RunResult

MAX_LENGTHS = 4


def ok_entries(run: RunResult) -> list[dict]:
    return [e for e in run.attention if isinstance(e, dict) and e.get("status") == "ok"
            and isinstance(e.get("length"), int) and isinstance(e.get("layer"), int)]


def captured_lengths(run: RunResult) -> list[int]:
    return sorted({e["length"] for e in ok_entries(run)})


def pick_lengths(lengths: Sequence[int], limit: int = MAX_LENGTHS) -> list[int]:
    """Up to ``limit`` lengths spread over the range, always including the longest."""
    lengths = sorted(set(lengths))
    if len(lengths) <= limit:
        return lengths
    idx = np.linspace(0, len(lengths) - 1, limit).round().astype(int)
    return [lengths[i] for i in sorted(set(idx))]


def pick_layers(layers: Sequence[int]) -> list[int]:
    """First, middle and last captured layer (fewer if fewer were captured)."""
    layers = sorted(set(layers))
    if len(layers) <= 3:
        return layers
    return [layers[0], layers[len(layers) // 2], layers[-1]]


def _span_tiles(edges: np.ndarray, span: Sequence[int] | None) -> tuple[float, float] | None:
    if not span or len(span) != 2:
        return None
    a, b = int(span[0]), int(span[1])
    start = int(np.searchsorted(edges, a, side="right") - 1)
    stop = int(np.searchsorted(edges, b, side="left"))
    return (max(start, 0), max(stop, start + 1))


def thumbnails(run: RunResult, maps_file: Path | None, lengths: Sequence[int]) -> tuple[list[dict], str | None]:
    """``([{length, layer, uri}], problem)``: heat-map data URIs (mean over heads) for
    the chosen lengths, or a one-line reason why there are none."""
    entries = ok_entries(run)
    if not entries:
        return [], None
    if maps_file is None or not maps_file.exists():
        return [], "the attention maps file (.npz) was not found beside the run; statistics only"
    from ctxscope.core.attention.storage import load
    from ctxscope.report.charts import heatmap_png

    try:
        arrays = load(maps_file)
    except RunFileError as exc:
        return [], str(exc)
    out = []
    for length in lengths:
        at_length = [e for e in entries if e["length"] == length]
        for layer in pick_layers([e["layer"] for e in at_length]):
            entry = next(e for e in at_length if e["layer"] == layer)
            name = entry.get("array")
            if not isinstance(name, str) or name not in arrays or arrays[name].ndim != 3:
                continue
            maps = arrays[name]
            edges = arrays.get(f"{name}_edges", np.arange(maps.shape[-1] + 1))
            uri = heatmap_png(maps.mean(axis=0), span_tiles=_span_tiles(edges, entry.get("span")))
            out.append({"length": length, "layer": layer, "heads": int(maps.shape[0]), "uri": uri})
    return out, None
