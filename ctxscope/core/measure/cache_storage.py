"""What a transformers cache holds, counted from its storage: key/value tensors (attention
layers, growing with the context) and recurrent/convolution states (SSM, linear-attention
and short-convolution layers, fixed in size). Each underlying storage once, never the views:
the memory held is the storage's.

A quantized layer (transformers' ``QuantizedCache``) keeps its past in
``_quantized_keys`` / ``_quantized_values`` beside a full-precision residual window in
``keys`` / ``values``: fp8 as a ``(float8 tensor, scale)`` tuple, optimum-quanto as a
tensor subclass whose packed data, scales and zero-points are its inner tensors
(``__tensor_flatten__``), hqq as ``(packed tensor, meta dict of scale / zero)``. All of
them are counted: what the strategy saves is what it really holds."""

from __future__ import annotations

from typing import Any

import torch


#: Where a layer keeps keys and values: the full-precision ones (the whole cache of a
#: dynamic layer, the residual window of a quantized one) and the quantized past.
_KV_ATTRS = ("keys", "values", "_quantized_keys", "_quantized_values")


def _leaves(value: Any, depth: int = 0) -> list[torch.Tensor]:
    """The plain tensors holding ``value``'s memory: a tensor subclass (a quantized
    tensor) is opened into its inner tensors; tuples, lists and dicts into their items."""
    if depth > 6:
        return []
    if isinstance(value, torch.Tensor):
        flatten = getattr(value, "__tensor_flatten__", None)
        if type(value) in (torch.Tensor, torch.nn.Parameter) or flatten is None:
            return [value]
        names, _ = flatten()
        return [t for name in names for t in _leaves(getattr(value, name), depth + 1)]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _leaves(item, depth + 1)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _leaves(item, depth + 1)]
    return []


def _cache_tensors(cache: Any) -> list[torch.Tensor]:
    """The key/value tensors of a cache (attention layers: they grow with the context),
    quantized parts with their scales and zero-points included."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [t for layer in layers for name in _KV_ATTRS for t in _leaves(getattr(layer, name, None))]
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
