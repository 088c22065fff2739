"""What each KV-cache strategy is predicted to hold, from the architecture (no weights):
the bytes :func:`ctxscope.core.measure.cache_storage.cache_bytes` then counts from the cache itself.

- ``dynamic`` / ``offload``: every attention layer's keys and values in the model's dtype
  (``offload`` holds the same bytes, most of them in host memory);
- ``static``: the preallocated ``L + 1`` tokens;
- ``fp8``: one byte per element plus one float32 scale per layer tensor (keys, values);
- ``int4`` / ``int2`` (optimum-quanto's layout): ``bits / 8`` bytes per element packed,
  plus a scale and a zero-point in the model's dtype per group of ``group_size``
  elements, plus the residual window's tokens in full precision.

Quantized strategies apply to full-attention models only (:mod:`ctxscope.core.measure.kv_cache`),
so sliding windows do not enter here.
"""

from __future__ import annotations

from ctxscope.core.predict.analytic import BYTES, Architecture, kv_bytes
from ctxscope.core.measure.kv_cache import DEFAULT_GROUP_SIZE, KVOptions

_BITS = {"int4": 4, "int2": 2}
_FP8_SCALE_BYTES = 4  # transformers keeps the fp8 scale in float32, one per layer tensor


def strategy_kv_bytes(arch: Architecture, length: int, dtype: str, strategy: str, *, batch: int = 1,
                      options: KVOptions = KVOptions(), residual_tokens: int = 0) -> int:
    """Bytes a cache of ``strategy`` holds with ``length`` tokens, ``residual_tokens`` of
    them still in the full-precision window (a prefill quantizes everything at once: 0)."""
    if strategy in ("dynamic", "offload"):
        return kv_bytes(arch, length, dtype, batch)
    if strategy == "static":
        return kv_bytes(arch, length + 1, dtype, batch)
    per_token = batch * sum(layer.elements_per_token() for layer in arch.kv_layers)
    tensors = 2 * len(arch.kv_layers)
    if strategy == "fp8":
        return per_token * length + tensors * _FP8_SCALE_BYTES
    if strategy in _BITS:
        quantized = per_token * max(0, length - residual_tokens)
        group = options.group_size or DEFAULT_GROUP_SIZE
        groups = -(-quantized // group)
        return quantized * _BITS[strategy] // 8 + groups * 2 * BYTES[dtype] + per_token * residual_tokens * BYTES[dtype]
    raise ValueError(f"unknown cache strategy {strategy!r}")


def strategy_kv_per_token(arch: Architecture, dtype: str, strategy: str, options: KVOptions = KVOptions()) -> float:
    """Bytes per cached token at long context (the fixed scales amortised away)."""
    long = 1 << 20
    return strategy_kv_bytes(arch, long, dtype, strategy, options=options) / long
