"""What an attention capture holds, as plain numpy records (no torch): the wire carries
them, the app and the reports draw them, the history stores them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class LayerAttention:
    """One layer at one length. ``maps[h, i, j]`` is the mean, over the queries of tile
    i, of the probability mass on the keys of tile j (each row sums to 1 where the
    tile's queries see any key). ``tile_edges`` are token boundaries (T + 1)."""

    length: int
    layer: int
    tile_edges: np.ndarray
    maps: np.ndarray  # [heads, T, T] float32
    profiles: dict[int, np.ndarray]  # query position -> [heads, L] float32
    stats: dict[str, tuple[float, ...]]  # name -> one value per head


@dataclass(frozen=True, slots=True)
class AttentionCapture:
    length: int
    layers: tuple[LayerAttention, ...]
    span: tuple[int, int] | None = None
    random_weights: bool = False
    #: Decoder layers asked for that have no attention (state-space, linear-attention,
    #: convolution or MLP-only layers of a hybrid): no map exists for them.
    without_attention: tuple[int, ...] = ()
