"""Attention maps on disk: one ``.npz`` per run (arrays named by length and layer, e.g.
``L8192_layer5`` [heads, T, T] float32), statistics inline in the run JSON. Loading
never unpickles (``allow_pickle=False``)."""

from __future__ import annotations

import math
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ctxscope.core.errors import RunFileError

if TYPE_CHECKING:  # collect imports torch; the UI opens stored maps without it
    from ctxscope.core.attention.collect import AttentionCapture


def attention_file_name(run_id: str) -> str:
    """Where a run's maps live, relative to its JSON file."""
    return f"{run_id}.attention.npz"


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
    """Add arrays to a run's ``.npz`` (a zip of ``.npy`` members), atomically: new
    members are appended to a copy that then replaces the file, so the arrays already
    there are neither read back nor compressed again as each length arrives."""
    tmp = path.with_name(path.name + ".part")
    existing: set[str] = set()
    if path.exists():
        shutil.copyfile(path, tmp)
        with zipfile.ZipFile(tmp) as zf:
            existing = set(zf.namelist())
    if existing & {f"{name}.npy" for name in arrays}:  # replacing an array: write the whole file anew
        arrays = {**load(path), **arrays}
        tmp.unlink()
    with zipfile.ZipFile(tmp, "a" if tmp.exists() else "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)
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
