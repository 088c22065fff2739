"""Attention for reports: which lengths and layers to show, their pooled maps as
thumbnails (mean over heads). Reads the run's ``.npz`` without unpickling; torch-free."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.errors import RunFileError
from ctxscope.core.results import RunResult

MAX_LENGTHS = 4


def ok_entries(run: RunResult) -> list[AttentionEntry]:
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


def _span_tiles(edges: np.ndarray, span: Sequence[int] | None) -> tuple[int, int] | None:
    if not span or len(span) != 2:
        return None
    a, b = int(span[0]), int(span[1])
    start = int(np.searchsorted(edges, a, side="right") - 1)
    stop = int(np.searchsorted(edges, b, side="left"))
    return (max(start, 0), max(stop, start + 1))


def _heads(run: RunResult, entry: AttentionEntry) -> int:
    per_head = [len(v) for v in (entry.get("stats") or {}).values() if isinstance(v, list)]
    return max([run.header.model.num_heads, *per_head])


def _limits(run: RunResult, chosen: Sequence[AttentionEntry]) -> dict[str, int]:
    """The most bytes each array the report reads may unpack to: [heads, T, T] float32
    maps and T + 1 int64 edges, from the run's declared heads and tiles."""
    from ctxscope.core.attention.storage import MAX_MEMBER_BYTES, declared_bytes

    limits: dict[str, int] = {}
    for e in chosen:
        tiles = e.get("tiles")
        name = e["array"]
        if isinstance(tiles, int) and tiles > 0:
            limits[name] = declared_bytes((_heads(run, e), tiles, tiles), 4)
            limits[f"{name}_edges"] = declared_bytes((tiles + 1,), 8)
        else:  # an entry without its tile count: only the general cap applies
            limits[name] = limits[f"{name}_edges"] = MAX_MEMBER_BYTES
    return limits


def thumbnails(run: RunResult, maps_file: Path | None, lengths: Sequence[int]) -> tuple[list[dict[str, Any]], str | None]:
    """``([{length, layer, uri}], problem)``: heat-map data URIs (mean over heads) for
    the chosen lengths, or a one-line reason why some or all are missing (no file, a
    damaged archive, arrays larger than the run declares)."""
    entries = ok_entries(run)
    if not entries:
        return [], None
    if maps_file is None or not maps_file.exists():
        return [], "the attention maps file (.npz) was not found beside the run; statistics only"
    from ctxscope.core.attention.storage import load_checked
    from ctxscope.report.attention_charts import heatmap_png

    chosen: list[AttentionEntry] = []
    for length in lengths:
        at_length = [e for e in entries if e["length"] == length]
        for layer in pick_layers([e["layer"] for e in at_length]):
            entry = next(e for e in at_length if e["layer"] == layer)
            if isinstance(entry.get("array"), str):
                chosen.append(entry)
    try:
        arrays, skipped = load_checked(maps_file, _limits(run, chosen))
    except RunFileError as exc:
        return [], f"{exc}; statistics only"
    out: list[dict[str, Any]] = []
    for entry in chosen:
        name = entry["array"]
        maps = arrays.get(name)
        if maps is None or maps.ndim != 3:
            continue
        edges = arrays.get(f"{name}_edges", np.arange(maps.shape[-1] + 1))
        uri = heatmap_png(maps.mean(axis=0), span_tiles=_span_tiles(edges, entry.get("span")))
        out.append({"length": entry["length"], "layer": entry["layer"], "heads": int(maps.shape[0]), "uri": uri})
    note = None
    if skipped:
        note = f"{maps_file.name}: {'; '.join(skipped[:3])}" + (f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else "")
    return out, note
