"""Attention maps between processes: ``array`` messages carry a capture's maps, tile
edges and profiles before the event that uses them, as raw little-endian float32 /
int64 bytes, zlib-compressed in chunks of at most :data:`CHUNK_BYTES` and base64-encoded.
The receiving side (:class:`ArrayAssembler`) bounds every chunk by the declared shape
before inflating it, so a hostile stream cannot take the reader's memory."""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.errors import WireError
from ctxscope.core.events import AttentionResult

if TYPE_CHECKING:
    from ctxscope.core.attention.records import AttentionCapture

#: Raw bytes per ``array`` line before compression.
CHUNK_BYTES = 4 * 1024**2
#: The most one array, and all arrays waiting for their event, may unpack to.
MAX_ARRAY_BYTES = 512 * 1024**2
MAX_PENDING_BYTES = 1024**3
_DTYPES = {"<f4": np.float32, "<i8": np.int64}


def array_messages(event: AttentionResult) -> Iterator[dict[str, Any]]:
    """The ``array`` messages carrying a capture's maps, tile edges and profiles."""
    if event.capture is None:
        return
    for la in event.capture.layers:
        name = f"L{la.length}_layer{la.layer}"
        yield from _chunks(name, np.asarray(la.maps, dtype="<f4"))
        yield from _chunks(f"{name}_edges", np.asarray(la.tile_edges, dtype="<i8"))
        for row, profile in sorted(la.profiles.items()):
            yield from _chunks(f"{name}_profile_q{row}", np.asarray(profile, dtype="<f4"))


def _chunks(name: str, array: np.ndarray) -> Iterator[dict[str, Any]]:
    raw = np.ascontiguousarray(array).tobytes()
    count = max(1, math.ceil(len(raw) / CHUNK_BYTES))
    for i in range(count):
        piece = zlib.compress(raw[i * CHUNK_BYTES:(i + 1) * CHUNK_BYTES], 1)
        yield {"type": "array", "name": name, "dtype": array.dtype.str, "shape": list(array.shape), "chunk": i,
               "chunks": count, "data": base64.b64encode(piece).decode("ascii")}


class ArrayAssembler:
    """Collects ``array`` messages until the attention event that uses them; the
    declared shape bounds every chunk before it is inflated (no zip bomb gets far)."""

    def __init__(self, max_pending: int = MAX_PENDING_BYTES) -> None:
        self.max_pending = max_pending
        self._parts: dict[str, tuple[str, tuple[int, ...], int, list[bytes]]] = {}
        self._pending = 0

    def add(self, data: dict[str, Any]) -> None:
        name, dtype, shape = data.get("name"), data.get("dtype"), data.get("shape")
        chunk, chunks, payload = data.get("chunk"), data.get("chunks"), data.get("data")
        if not (isinstance(name, str) and len(name) <= 200 and dtype in _DTYPES and isinstance(payload, str)
                and isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape) and len(shape) <= 4
                and type(chunk) is int and type(chunks) is int and 0 <= chunk < chunks):
            raise WireError(f"array {str(name)[:40]!r}: malformed")
        size = math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize
        if size > MAX_ARRAY_BYTES:
            raise WireError(f"array {name!r}: {size:,} bytes, more than {MAX_ARRAY_BYTES:,}")
        if chunk == 0:
            if name in self._parts:
                raise WireError(f"array {name!r}: sent twice")
            self._parts[name] = (dtype, tuple(shape), chunks, [])
        have = self._parts.get(name)
        if have is None or have[:3] != (dtype, tuple(shape), chunks) or len(have[3]) != chunk:
            raise WireError(f"array {name!r}: chunk {chunk} out of order")
        room = min(CHUNK_BYTES, size - sum(map(len, have[3])))
        try:
            inflater = zlib.decompressobj()
            piece = inflater.decompress(base64.b64decode(payload, validate=True), room + 1)
        except (ValueError, zlib.error):
            raise WireError(f"array {name!r}: chunk {chunk} is not compressed base64") from None
        if len(piece) > room or (chunk == chunks - 1 and len(piece) != room) or not inflater.eof:
            raise WireError(f"array {name!r}: chunk {chunk} does not match the declared shape")
        self._pending += len(piece)
        if self._pending > self.max_pending:
            raise WireError(f"more than {self.max_pending:,} bytes of attention maps pending")
        have[3].append(piece)

    def take(self, name: str) -> np.ndarray:
        if name not in self._parts:
            raise WireError(f"array {name!r} was not sent")
        dtype, shape, chunks, parts = self._parts.pop(name)
        if len(parts) != chunks:
            raise WireError(f"array {name!r}: {len(parts)} of {chunks} chunks")
        raw = b"".join(parts)
        self._pending -= len(raw)
        array: np.ndarray = np.frombuffer(raw, dtype=_DTYPES[dtype]).reshape(shape).copy()
        return array

    def capture(self, length: int, entries: list[AttentionEntry], span: tuple[int, int] | None,
                random_weights: bool) -> AttentionCapture:
        """The :class:`AttentionCapture` the worker had, from its arrays and entries."""
        from ctxscope.core.attention.records import AttentionCapture, LayerAttention

        layers = []
        for entry in entries:
            if entry.get("status") != "ok":
                continue
            name, layer, rows = entry.get("array"), entry.get("layer"), entry.get("profile_rows", [])
            stats = entry.get("stats")
            if not (isinstance(name, str) and type(layer) is int and isinstance(rows, list)
                    and all(type(r) is int for r in rows) and isinstance(stats, dict)):
                raise WireError(f"attention entry of layer {layer!r}: malformed")
            maps, edges = self.take(name), self.take(f"{name}_edges")
            tiles = len(edges) - 1
            if maps.ndim != 3 or maps.shape[1:] != (tiles, tiles) or edges.ndim != 1:
                raise WireError(f"array {name!r}: shape {maps.shape} does not match {tiles} tiles")
            profiles = {row: self.take(f"{name}_profile_q{row}") for row in rows}
            try:
                values = {str(k): tuple(math.nan if v is None else float(v) for v in vs) for k, vs in stats.items()}
            except (TypeError, ValueError):
                raise WireError(f"attention entry {name!r}: statistics must be numbers") from None
            layers.append(LayerAttention(length=length, layer=layer, tile_edges=edges, maps=maps, profiles=profiles,
                                         stats=values))
        if self._parts:
            raise WireError(f"arrays sent but not used: {', '.join(sorted(self._parts))[:80]}")
        return AttentionCapture(length=length, layers=tuple(layers), span=span, random_weights=random_weights)
