"""Attention maps on disk: one ``.npz`` per run (arrays named by length and layer, e.g.
``L8192_layer5`` [heads, T, T] float32), statistics inline in the run JSON. Loading
never unpickles (``allow_pickle=False``)."""

from __future__ import annotations

import math
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.errors import RunFileError
from ctxscope.core.units import fmt_bytes

if TYPE_CHECKING:  # collect imports torch; the UI opens stored maps without it
    from ctxscope.core.attention.records import AttentionCapture


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


def entries_of(cap: AttentionCapture, file_name: str, text_kind: str) -> list[AttentionEntry]:
    """The run JSON's ``attention`` entries for one capture (statistics per head)."""
    entries: list[AttentionEntry] = []
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
        with np.load(path, allow_pickle=False) as data:  # our own file, being rewritten: no caps
            arrays = {**{name: data[name] for name in data.files}, **arrays}
        tmp.unlink()
    with zipfile.ZipFile(tmp, "a" if tmp.exists() else "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)
    tmp.replace(path)


#: The most any one array may unpack to, and all arrays read at once: a 2 MB archive
#: that unpacks to 2 GiB must not take the reader's memory with it.
MAX_MEMBER_BYTES = 512 * 1024**2
MAX_TOTAL_BYTES = 1024**3
_HEADER_SLACK = 64 * 1024  # a .npy member is its header (≤ a few KiB) plus the data
_SMALL = 1024**2

# What a damaged archive raises while it is opened or read (truncated, bad CRC, ...).
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError, NotImplementedError)


def declared_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """Upper bound of a member holding an array of ``shape`` (header included)."""
    return math.prod(shape) * itemsize + _HEADER_SLACK


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> np.ndarray:
    """One ``.npy`` member, after checking what it would unpack to: the zip header's
    size (which bounds what zipfile will ever inflate) and the shape in the .npy
    header, both against ``limit``, before a byte of data is read."""
    name = info.filename[:-4]  # the array's name, without ".npy"
    if info.file_size > limit:
        raise _TooLarge(f"{name} unpacks to {info.file_size / 1024**2:,.1f} MiB, more than the "
                        f"{limit / 1024**2:,.1f} MiB its declared shape allows: not read")
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(fh)
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects (never unpickled)")
    if math.prod(shape) * dtype.itemsize > info.file_size:
        raise ValueError(f"{name} is shorter than its header says")
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


class _TooLarge(Exception):
    """A member bigger than allowed: skipped, the rest of the archive still read."""


def load_checked(path: Path, limits: dict[str, int] | None = None, *, max_total: int = MAX_TOTAL_BYTES
                 ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Arrays of a run's ``.npz`` and one line per array left out.

    ``limits`` maps array names to the most bytes each may unpack to (from the run's
    declared shapes, :func:`declared_bytes`); only those arrays are read. Without it
    every array is read, each capped at :data:`MAX_MEMBER_BYTES`. Arrays past
    ``max_total`` are left out. A damaged archive (truncated, bad CRC, not a zip) raises
    :class:`RunFileError` with one line; nothing is ever unpickled."""
    from ctxscope.core.files import open_regular

    try:
        # Opened as a regular file first: a FIFO named like a run's maps would hang zipfile.
        with open_regular(path) as raw, zipfile.ZipFile(raw) as zf:
            members = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
            wanted = {n: members[n] for n in (limits or members) if n in members}
            arrays: dict[str, np.ndarray] = {}
            skipped: list[str] = []
            total = 0
            for name, info in wanted.items():
                limit = min(MAX_MEMBER_BYTES, (limits or {}).get(name, MAX_MEMBER_BYTES))
                # Small members (edges, profiles, tokens) are always read: a map without
                # its edges is of no use to anyone.
                if info.file_size > _SMALL and total + info.file_size > max_total:
                    skipped.append(f"{name}: left out, the arrays read so far reach the "
                                   f"{fmt_bytes(max_total)} cap")
                    continue
                try:
                    arrays[name] = _read_member(zf, info, limit)
                except _TooLarge as exc:
                    skipped.append(str(exc))
                    continue
                total += info.file_size
            return arrays, skipped
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such attention file") from None
    except _DAMAGE as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunFileError(f"{path}: damaged or not a ctxscope attention file ({reason})") from None


def load(path: Path) -> dict[str, np.ndarray]:
    """All arrays of a run's ``.npz``, each within :data:`MAX_MEMBER_BYTES` (larger
    arrays are left out); never unpickles, so object arrays are refused."""
    return load_checked(path)[0]
