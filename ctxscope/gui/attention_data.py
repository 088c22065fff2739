"""What the Attention tab shows, as CPU numpy arrays: maps, tile edges, profiles and
statistics per (length, layer), from a live sweep's results or a stored run's .npz."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Layer:
    maps: np.ndarray  # [H, T, T]
    edges: np.ndarray
    profiles: dict[int, np.ndarray]
    stats: dict[str, list[float]]


@dataclass
class AttentionData:
    """Everything the tab shows, as CPU numpy arrays: from a live sweep or a stored run."""

    layers: dict[tuple[int, int], Layer] = field(default_factory=dict)
    tokens: dict[int, np.ndarray] = field(default_factory=dict)
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)

    def add_result(self, result) -> None:
        if result.capture is None:
            return
        for la in result.capture.layers:
            self.layers[(la.length, la.layer)] = Layer(la.maps, la.tile_edges, dict(la.profiles),
                                                        {k: list(v) for k, v in la.stats.items()})
        if result.tokens is not None:
            self.tokens[result.capture.length] = np.array(result.tokens)
        if result.capture.span is not None:
            self.spans[result.capture.length] = tuple(result.capture.span)

    def add_stored(self, entries: list[dict], arrays: dict[str, np.ndarray]) -> None:
        for e in entries:
            if e.get("status") != "ok" or e.get("array") not in arrays:
                continue
            key, length = e["array"], int(e["length"])
            profiles = {int(r): arrays[f"{key}_profile_q{r}"] for r in e.get("profile_rows", [])
                        if f"{key}_profile_q{r}" in arrays}
            self.layers[(length, int(e["layer"]))] = Layer(arrays[key], arrays[f"{key}_edges"], profiles,
                                                            e.get("stats", {}))
            if e.get("span"):
                self.spans[length] = tuple(e["span"])
            if f"L{length}_tokens" in arrays:
                self.tokens[length] = arrays[f"L{length}_tokens"]

    def lengths(self) -> list[int]:
        return sorted({length for length, _ in self.layers})

    def layer_ids(self, length: int) -> list[int]:
        return sorted(layer for n, layer in self.layers if n == length)
