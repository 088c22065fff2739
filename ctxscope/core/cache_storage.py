"""What a transformers cache holds, counted from its storage: key/value tensors (attention
layers, growing with the context) and recurrent/convolution states (SSM, linear-attention
and short-convolution layers, fixed in size). Each underlying storage once, never the views:
the memory held is the storage's."""

from __future__ import annotations

from typing import Any

import torch


def _cache_tensors(cache: Any) -> list[torch.Tensor]:
    """The key/value tensors of a cache (attention layers: they grow with the context)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [t for layer in layers for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
                if isinstance(t, torch.Tensor)]
    if isinstance(cache, (tuple, list)):  # legacy tuple-of-tuples caches
        return [t for item in cache for t in (_cache_tensors(item) if isinstance(item, (tuple, list)) else [item])
                if isinstance(t, torch.Tensor)]
    return []


def _state_tensors(cache: Any) -> list[torch.Tensor]:
    """The recurrent and convolution states of a cache's linear-attention, SSM and
    short-convolution layers (transformers 5's ``LinearAttentionLayer`` family keeps them
    in ``conv_states`` / ``recurrent_states`` dicts, one entry per state): fixed in size,
    whatever the context."""
    out: list[torch.Tensor] = []
    for layer in getattr(cache, "layers", None) or ():
        for name in ("conv_states", "recurrent_states"):
            states = getattr(layer, name, None)
            if isinstance(states, dict):
                out += [t for t in states.values() if isinstance(t, torch.Tensor)]
    return out


def _storage_bytes(tensors: list[torch.Tensor], seen: set[tuple[str, int]]) -> int:
    total = 0
    for t in tensors:
        storage = t.untyped_storage()
        key = (str(t.device), storage.data_ptr())
        if key not in seen:
            seen.add(key)
            total += int(storage.nbytes())
    return total


def cache_bytes(cache: Any) -> int:
    """Bytes of memory the key/value tensors of a transformers cache keep allocated:
    each underlying storage once.

    Not the bytes of the tensors as seen: a sliding-window layer's keys are a *view* of
    the whole buffer its last update built (after a prefill of L tokens, a view of the
    last window of an L-token storage), and a cropped full-attention layer a view of its
    L + 1 tokens. The memory held is the storage's.
    """
    return _storage_bytes(_cache_tensors(cache), set())


def state_bytes(cache: Any) -> int:
    """Bytes the recurrent and convolution states of a cache hold (SSM, linear-attention
    and short-convolution layers), each storage once and none already counted as KV."""
    seen: set[tuple[str, int]] = set()
    _storage_bytes(_cache_tensors(cache), seen)
    return _storage_bytes(_state_tensors(cache), seen)
