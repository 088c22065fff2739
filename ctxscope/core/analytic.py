"""What a model costs from its config alone: parameters, weights and KV-cache bytes,
FLOPs of a prefill and of one decode step, bytes a decode step moves.

Exact where it can be: parameters come from instantiating the architecture on the meta
device (no memory, no weights), and the KV layout from the cache transformers itself
builds for the config, so sliding-window and alternating local/global layers are capped
exactly where transformers caps them. Where the config does not describe a figure, the
field is ``None`` with a reason, never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ctxscope.core.blocks import AnalyticBlock, AnalyticRow
from ctxscope.core.modelinfo import is_decoder_config, text_config

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True, slots=True)
class KVLayer:
    kv_heads: int
    head_dim: int
    window: int | None  # tokens kept by a sliding layer after a prefill (None: all)


@dataclass(frozen=True, slots=True)
class Architecture:
    """The figures of a config that costs depend on."""

    params: int
    embedding_params: int  # input embeddings (a lookup, not a matmul)
    lm_head_matmul_params: int  # hidden · vocab when the model ends in an LM head
    tied: bool  # the LM head is the input embedding (counted once in params)
    num_layers: int
    num_heads: int
    head_dim: int
    kv_layers: tuple[KVLayer, ...]
    is_decoder: bool
    notes: tuple[str, ...] = field(default=())


def describe_config(config: Any) -> Architecture:
    """Build the :class:`Architecture` of a transformers config (meta device: no memory)."""
    from transformers import AutoModel, AutoModelForCausalLM, DynamicCache

    decoder = is_decoder_config(config)
    with torch.device("meta"):
        # from_config is unannotated in transformers 5.24: mypy sees an untyped call.
        model = (AutoModelForCausalLM if decoder else AutoModel).from_config(config)  # type: ignore[no-untyped-call]
    params = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings()
    embedding_params = int(emb.weight.numel()) if emb is not None else 0
    head = model.get_output_embeddings() if decoder else None
    lm_head = int(head.weight.numel()) if head is not None else 0
    tied = head is not None and emb is not None and head.weight is emb.weight
    tc = text_config(config)
    heads = int(tc.num_attention_heads)
    head_dim = int(getattr(tc, "head_dim", None) or tc.hidden_size // heads)
    kv_heads = int(getattr(tc, "num_key_value_heads", None) or heads)
    notes: list[str] = []
    kv_layers: list[KVLayer] = []
    if decoder:
        cache = DynamicCache(config=config)
        for layer in cache.layers:
            sliding = getattr(layer, "is_sliding", False)
            window = getattr(layer, "sliding_window", None) if sliding else None
            # After a prefill a sliding layer keeps its last window − 1 states.
            kv_layers.append(KVLayer(kv_heads, head_dim, window - 1 if window else None))
        if len(kv_layers) != int(tc.num_hidden_layers):
            notes.append("cache layers differ from hidden layers (shared KV): KV bytes follow the cache")
    return Architecture(params=int(params), embedding_params=embedding_params, lm_head_matmul_params=lm_head, tied=tied,
                        num_layers=int(tc.num_hidden_layers), num_heads=heads, head_dim=head_dim,
                        kv_layers=tuple(kv_layers), is_decoder=decoder, notes=tuple(notes))


def kv_bytes(arch: Architecture, length: int, dtype: str, batch: int = 1) -> int:
    """Bytes of the KV states a cache of ``length`` tokens keeps visible (sliding layers
    capped at their window): the logical cache, what a step reads. The memory actually
    allocated differs by views: :func:`prefill_kv_storage_bytes`,
    :func:`decode_kv_storage_bytes`."""
    size = BYTES[dtype]
    return batch * sum(2 * layer.kv_heads * layer.head_dim * size * (min(length, layer.window) if layer.window else length)
                       for layer in arch.kv_layers)


def prefill_kv_storage_bytes(arch: Architecture, length: int, dtype: str, batch: int = 1) -> int:
    """Bytes a prefill of ``length`` tokens leaves allocated in the cache: every layer's
    whole buffer. A sliding-window layer keeps only a *view* of its last window, but the
    view holds the full ``length``-token storage until the next update replaces it."""
    return batch * length * kv_bytes_per_token(arch, dtype)


def decode_kv_storage_bytes(arch: Architecture, depth: int, dtype: str, batch: int = 1) -> int:
    """Bytes the cache holds after one decode step at depth ``depth`` (what the sweep's
    decode points report): the step's concatenation leaves ``depth + 1`` tokens in a
    full-attention layer, at most the window (``window − 1`` kept + the new one) in a
    sliding one."""
    size = BYTES[dtype]
    return batch * sum(2 * layer.kv_heads * layer.head_dim * size
                       * (min(depth + 1, layer.window + 1) if layer.window else depth + 1)
                       for layer in arch.kv_layers)


def decode_traffic_bytes(arch: Architecture, depth: int, dtype: str, batch: int = 1, cache: str = "dynamic") -> int:
    """Bytes one decode step at depth ``depth`` moves through memory at least: every
    weight once, the cache read by attention, and the cache update. A dynamic cache
    grows by concatenation, so each step also reads the old cache and writes the new
    one (about three times the cache in all); a static cache writes one token in place,
    but attention reads its whole preallocated buffer."""
    stored = decode_kv_storage_bytes(arch, depth, dtype, batch)  # what attention reads after the update
    if cache == "static":
        update = batch * kv_bytes_per_token(arch, dtype)  # one token written in place
    else:
        update = stored + (stored - batch * kv_bytes_per_token(arch, dtype))  # write the new cache, read the old
    return weights_bytes(arch, dtype) + stored + update


def kv_bytes_per_token(arch: Architecture, dtype: str) -> int:
    """Per token of context with every layer still growing (no window reached)."""
    return sum(2 * layer.kv_heads * layer.head_dim * BYTES[dtype] for layer in arch.kv_layers)


def weights_bytes(arch: Architecture, dtype: str) -> int:
    return arch.params * BYTES[dtype]


def _attended(length: int, window: int | None, causal: bool) -> float:
    """Σ over queries of keys attended in a prefill of ``length`` tokens."""
    if not causal:
        return float(length) * length
    if window is None or window >= length:
        return length * (length + 1) / 2
    w = window + 1  # a query sees itself and the last `window` states
    return w * (w + 1) / 2 + (length - w) * w


def _body_params(arch: Architecture) -> int:
    """Parameters applied to every token: all but the input embeddings and the LM head
    (norm scales are counted as matmul weights too: 2·N per token, the usual convention)."""
    return arch.params - arch.embedding_params - (0 if arch.tied else arch.lm_head_matmul_params)


def prefill_flops(arch: Architecture, length: int, batch: int = 1) -> float:
    """FLOPs of a forward pass over ``length`` tokens with last-position logits: 2 per
    multiply–add for every weight matrix (embeddings excluded: a lookup), plus the
    attention term 4 · heads · head_dim per attended query–key pair (QKᵀ and PV)."""
    matmul = _body_params(arch)
    linear = 2.0 * matmul * length + 2.0 * arch.lm_head_matmul_params  # LM head: one position
    windows = [layer.window for layer in arch.kv_layers] or [None] * arch.num_layers
    attention = sum(4.0 * arch.num_heads * arch.head_dim * _attended(length, w, arch.is_decoder) for w in windows)
    return batch * (linear + attention)


def decode_flops(arch: Architecture, depth: int, batch: int = 1) -> float:
    """FLOPs of one decode step with ``depth`` tokens cached (attends depth + 1 keys)."""
    matmul = _body_params(arch) + arch.lm_head_matmul_params
    attention = sum(4.0 * arch.num_heads * arch.head_dim * ((min(depth, layer.window) if layer.window else depth) + 1)
                    for layer in arch.kv_layers)
    return batch * (2.0 * matmul + attention)


def decode_bytes(arch: Architecture, depth: int, dtype: str, batch: int = 1) -> int:
    """Bytes a decode step must read at least: every weight once and the whole cache."""
    return weights_bytes(arch, dtype) + kv_bytes(arch, depth, dtype, batch)


def analytic_block(config: Any, lengths: Sequence[int], dtype: str, device_name: str | None,
                   cache: str = "dynamic") -> AnalyticBlock:
    """What the analytic model predicts for this run (stored in its header): per length
    KV bytes, prefill FLOPs, decode FLOPs and bytes; the weights; the device peak. A
    config the model cannot describe gives ``{"error": "..."}`` instead of wrong numbers."""
    from ctxscope.core.hardware import peak_for

    try:
        arch = describe_config(config)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        return {"error": f"the analytic model cannot describe this config ({exc})"}
    kv_dtype = dtype if dtype in ("float32", "float16", "bfloat16") else "float32"
    rows: list[AnalyticRow] = [{"length": n, "kv_cache_bytes": kv_bytes(arch, n, kv_dtype),
             "prefill_flops": prefill_flops(arch, n),
             "decode_flops": decode_flops(arch, n) if arch.is_decoder else None,
             "decode_bytes": decode_bytes(arch, n, kv_dtype) if arch.is_decoder else None,
             # What the sweep measures: storage held after a prefill / a decode step, and
             # the bytes a decode step really moves with this run's cache class.
             "prefill_kv_storage_bytes": prefill_kv_storage_bytes(arch, n, kv_dtype) if arch.is_decoder else 0,
             "decode_kv_storage_bytes": decode_kv_storage_bytes(arch, n, kv_dtype) if arch.is_decoder else None,
             "decode_traffic_bytes": decode_traffic_bytes(arch, n, kv_dtype, cache=cache)
             if arch.is_decoder else None}
            for n in sorted(set(lengths))]
    peak = peak_for(device_name)
    return {"params": arch.params, "weights_bytes": weights_bytes(arch, kv_dtype), "rows": rows,
            "notes": list(arch.notes),
            "peak": None if peak is None else {"name": peak.name, "flops": dict(peak.flops),
                                               "bytes_per_s": peak.bytes_per_s, "source": peak.source}}
