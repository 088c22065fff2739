"""Attention maps on disk: one ``.npz`` per run (arrays named by length and layer, e.g.
``L8192_layer5`` [heads, T, T] float32), statistics inline in the run JSON. Loading
never unpickles (``allow_pickle=False``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ctxscope.core.attention.collect import AttentionCapture
from ctxscope.core.errors import RunFileError


def key(length: int, layer: int) -> str:
    return f"L{length}_layer{layer}"


def arrays_of(cap: AttentionCapture, tokens: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for la in cap.layers:
        k = key(la.length, la.layer)
        out[k] = la.maps.astype(np.float32)
        out[f"{k}_edges"] = la.tile_edges.astype(np.int64)
        for row, profile in la.profiles.items():
            out[f"{k}_profile_q{row}"] = profile.astype(np.float32)
    if tokens is not None:
        out[f"L{cap.length}_tokens"] = np.array(tokens, dtype=np.str_)
    return out


def entries_of(cap: AttentionCapture, file_name: str, text_kind: str) -> list[dict[str, Any]]:
    """The run JSON's ``attention`` entries for one capture (statistics per head)."""
    entries = []
    for la in cap.layers:
        stats = {name: [None if not math.isfinite(v) else v for v in values] for name, values in la.stats.items()}
        entries.append({"length": la.length, "layer": la.layer, "tiles": int(len(la.tile_edges) - 1), "status": "ok",
                        "map_file_or_inline": file_name, "array": key(la.length, la.layer),
                        "profile_rows": sorted(la.profiles), "span": list(cap.span) if cap.span else None,
                        "text": text_kind, "random_weights": cap.random_weights, "stats": stats})
    return entries


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write (or extend) a run's ``.npz`` atomically."""
    merged = dict(load(path)) if path.exists() else {}
    merged.update(arrays)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez_compressed(tmp, **merged)
    tmp.replace(path)


def load(path: Path) -> dict[str, np.ndarray]:
    """All arrays of a run's ``.npz``; never unpickles, so object arrays are refused."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such attention file") from None
    except (ValueError, OSError) as exc:
        raise RunFileError(f"{path}: not a ctxscope attention file ({exc})") from None
