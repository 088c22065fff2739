"""What a model costs from its config alone: parameters (total and, for a mixture of
experts, active), weights, KV-cache and recurrent-state bytes, FLOPs of a prefill and of
one decode step, bytes a decode step moves.

Exact where it can be: parameters come from instantiating the architecture on the meta
device (no memory, no weights), and the cache layout — which layers hold keys and values
(full or sliding), which hold a fixed-size state (state-space, linear-attention,
short-convolution layers), and how large each is — from the cache transformers itself
builds for a meta-device pass (:mod:`ctxscope.core.model.layer_kinds`). So sliding windows,
hybrid stacks and pure state-space models are sized exactly where transformers sizes them.
Where the config does not describe a figure, the field is ``None`` with a reason, never a
guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ctxscope.core.blocks import AnalyticBlock, AnalyticRow, BreakdownCrossover
from ctxscope.core.model.layer_kinds import KVLayer, StateLayer, cache_layout
from ctxscope.core.model.modelinfo import is_decoder_config, text_config
from ctxscope.core.model.moe import Experts, find_experts

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
#: FLOPs per recurrent-state element per token: the update (decay, write) and the read-out.
#: An estimate (the exact count differs by kernel); small beside the matmuls.
RECURRENCE_FLOPS = 4

__all__ = ["Architecture", "KVLayer", "StateLayer", "describe_config"]


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
    state_layers: tuple[StateLayer, ...] = ()
    layer_kinds: tuple[str, ...] = ()
    experts: Experts | None = None

    @property
    def active_params(self) -> int:
        """Parameters one token uses (all of them for a dense model)."""
        return self.experts.active_params(self.params) if self.experts else self.params


def describe_config(config: Any) -> Architecture:
    """Build the :class:`Architecture` of a transformers config (meta device: no memory)."""
    from transformers import AutoModel, AutoModelForCausalLM

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
    heads = int(getattr(tc, "num_attention_heads", 0) or 0)
    head_dim = int(getattr(tc, "head_dim", None) or (tc.hidden_size // heads if heads else 0))
    experts = find_experts(model, config)
    notes: list[str] = []
    kv_layers: tuple[KVLayer, ...] = ()
    state_layers: tuple[StateLayer, ...] = ()
    kinds: tuple[str, ...] = ()
    if decoder:
        layout = cache_layout(config, model)  # last: it casts the meta model
        kv_layers, state_layers, kinds = layout.kv_layers, layout.state_layers, layout.kinds
        notes += layout.notes
        if len(kinds) != int(tc.num_hidden_layers):
            notes.append("cache layers differ from hidden layers (shared KV): KV bytes follow the cache")
        if kv_layers:
            head_dim = kv_layers[0].head_dim
    return Architecture(params=int(params), embedding_params=embedding_params, lm_head_matmul_params=lm_head, tied=tied,
                        num_layers=int(tc.num_hidden_layers), num_heads=heads, head_dim=head_dim,
                        kv_layers=kv_layers, is_decoder=decoder, notes=tuple(notes),
                        state_layers=state_layers, layer_kinds=kinds, experts=experts)


def state_bytes(arch: Architecture, dtype: str, batch: int = 1) -> int:
    """Bytes of the recurrent and convolution states (fixed: the same at any length)."""
    return sum(layer.bytes(BYTES[dtype], batch) for layer in arch.state_layers)


def kv_bytes(arch: Architecture, length: int, dtype: str, batch: int = 1) -> int:
    """Bytes of the KV states a cache of ``length`` tokens keeps visible (sliding layers
    capped at their window): the logical cache, what a step reads. The memory actually
    allocated differs by views: :func:`prefill_kv_storage_bytes`,
    :func:`decode_kv_storage_bytes`."""
    size = BYTES[dtype]
    return batch * sum(layer.elements_per_token() * size * (min(length, layer.window) if layer.window else length)
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
    return batch * sum(layer.elements_per_token() * size
                       * (min(depth + 1, layer.window + 1) if layer.window else depth + 1)
                       for layer in arch.kv_layers)


def decode_traffic_bytes(arch: Architecture, depth: int, dtype: str, batch: int = 1, cache: str = "dynamic") -> int:
    """Bytes one decode step at depth ``depth`` moves through memory at least: the weights
    its tokens use once, the cache read by attention, the cache update, and each recurrent
    state read and written. A dynamic cache grows by concatenation, so each step also reads
    the old cache and writes the new one (about three times the cache in all); a static
    cache writes one token in place, but attention reads its whole preallocated buffer."""
    stored = decode_kv_storage_bytes(arch, depth, dtype, batch)  # what attention reads after the update
    if cache == "static":
        update = batch * kv_bytes_per_token(arch, dtype)  # one token written in place
    else:
        update = stored + (stored - batch * kv_bytes_per_token(arch, dtype))  # write the new cache, read the old
    return decode_weight_bytes(arch, dtype, batch) + stored + update + 2 * state_bytes(arch, dtype, batch)


def kv_bytes_per_token(arch: Architecture, dtype: str) -> int:
    """Per token of context with every layer still growing (no window reached)."""
    return sum(layer.elements_per_token() * BYTES[dtype] for layer in arch.kv_layers)


def weights_bytes(arch: Architecture, dtype: str) -> int:
    return arch.params * BYTES[dtype]


def decode_weight_bytes(arch: Architecture, dtype: str, batch: int = 1) -> int:
    """Weights a decode step of ``batch`` tokens reads: all of a dense model; of a mixture
    of experts, all but the routed experts no token chose (at most k per token)."""
    if arch.experts is None:
        return weights_bytes(arch, dtype)
    e = arch.experts
    touched = min(e.num_experts, e.top_k * batch)
    return (arch.params - e.expert_params + e.expert_params * touched // e.num_experts) * BYTES[dtype]


def _attended(length: int, window: int | None, causal: bool) -> float:
    """Σ over queries of keys attended in a prefill of ``length`` tokens."""
    if not causal:
        return float(length) * length
    if window is None or window >= length:
        return length * (length + 1) / 2
    w = window + 1  # a query sees itself and the last `window` states
    return w * (w + 1) / 2 + (length - w) * w


def _body_params(arch: Architecture) -> int:
    """Parameters applied to every token: all but the input embeddings and the LM head,
    and of a mixture of experts only those one token uses (norm scales are counted as
    matmul weights too: 2·N per token, the usual convention)."""
    return arch.active_params - arch.embedding_params - (0 if arch.tied else arch.lm_head_matmul_params)


def _pair_flops(arch: Architecture, layer: KVLayer | None) -> float:
    """FLOPs per attended query–key pair: QKᵀ and PV over every query head."""
    k_dim = layer.head_dim if layer else arch.head_dim
    v_dim = (layer.v_head_dim or layer.head_dim) if layer else arch.head_dim
    return 2.0 * arch.num_heads * (k_dim + v_dim)


def _recurrence_flops(arch: Architecture) -> float:
    """FLOPs per token of every recurrent state's update and read-out."""
    return float(RECURRENCE_FLOPS * sum(layer.recurrent_elements for layer in arch.state_layers))


def prefill_flops(arch: Architecture, length: int, batch: int = 1) -> float:
    """FLOPs of a forward pass over ``length`` tokens with last-position logits: 2 per
    multiply–add for every weight matrix a token uses (embeddings excluded: a lookup;
    a mixture of experts: the active experts only), the attention term per attended
    query–key pair on the attention layers only (L² on full layers, L·w on sliding
    ones), and the recurrence of state-space and linear-attention layers (∝ L)."""
    linear = 2.0 * _body_params(arch) * length + 2.0 * arch.lm_head_matmul_params  # LM head: one position
    if arch.is_decoder:
        attention = sum(_pair_flops(arch, layer) * _attended(length, layer.window, True) for layer in arch.kv_layers)
    else:  # an encoder: every layer attends every pair
        attention = arch.num_layers * _pair_flops(arch, None) * _attended(length, None, False)
    return batch * (linear + attention + _recurrence_flops(arch) * length)


def decode_flops(arch: Architecture, depth: int, batch: int = 1) -> float:
    """FLOPs of one decode step with ``depth`` tokens cached (attends depth + 1 keys)."""
    matmul = _body_params(arch) + arch.lm_head_matmul_params
    attention = sum(_pair_flops(arch, layer) * ((min(depth, layer.window) if layer.window else depth) + 1)
                    for layer in arch.kv_layers)
    return batch * (2.0 * matmul + attention + _recurrence_flops(arch))


def decode_bytes(arch: Architecture, depth: int, dtype: str, batch: int = 1) -> int:
    """Bytes a decode step must read at least: the weights it uses once, the whole KV
    cache and every recurrent state."""
    return decode_weight_bytes(arch, dtype, batch) + kv_bytes(arch, depth, dtype, batch) + state_bytes(arch, dtype, batch)


def kinds_summary(arch: Architecture) -> dict[str, int]:
    """How many decoder layers of each kind (full_attention: 6, mamba: 18, …)."""
    out: dict[str, int] = {}
    for kind in arch.layer_kinds:
        out[kind] = out.get(kind, 0) + 1
    return out


def analytic_block(config: Any, lengths: Sequence[int], dtype: str, device_name: str | None,
                   cache: str = "dynamic") -> AnalyticBlock:
    """What the analytic model predicts for this run (stored in its header): per length
    KV bytes, prefill FLOPs, decode FLOPs and bytes; the weights; the device peak. A
    config the model cannot describe gives ``{"error": "..."}`` instead of wrong numbers."""
    from ctxscope.core.machine.hardware import peak_for

    try:
        arch = describe_config(config)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        return {"error": f"the analytic model cannot describe this config ({exc})"}
    kv_dtype = dtype if dtype in ("float32", "float16", "bfloat16") else "float32"
    state = state_bytes(arch, kv_dtype) if arch.state_layers else None
    rows: list[AnalyticRow] = [{"length": n, "kv_cache_bytes": kv_bytes(arch, n, kv_dtype),
             "state_bytes": state,
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
    block: AnalyticBlock = {"params": arch.params, "weights_bytes": weights_bytes(arch, kv_dtype), "rows": rows,
            "notes": list(arch.notes), "layer_kinds": kinds_summary(arch),
            "peak": None if peak is None else {"name": peak.name, "flops": dict(peak.flops),
                                               "bytes_per_s": peak.bytes_per_s, "source": peak.source}}
    if arch.experts is not None:
        block["active_params"] = arch.active_params
        block["experts"] = {"num_experts": arch.experts.num_experts, "top_k": arch.experts.top_k,
                            "expert_params": arch.experts.expert_params}
    return block


def _first_crossing(f: Any, hi: float = 1e9) -> float | None:
    """The smallest x ≥ 1 where the increasing-then-positive ``f`` reaches 0 (bisection
    on a doubling bracket), or ``None`` when it stays negative up to ``hi``."""
    lo, x = 1.0, 1.0
    if f(lo) >= 0:
        return lo
    while f(x) < 0:
        lo, x = x, x * 2
        if x > hi:
            return None
    for _ in range(60):
        mid = (lo + x) / 2
        lo, x = (mid, x) if f(mid) < 0 else (lo, mid)
    return x


def attention_crossover(config: Any, dtype: str) -> BreakdownCrossover:
    """Where attention overtakes the linear layers, from the config alone.

    Prefill: the length L where the attention term of :func:`prefill_flops` (every
    attended query–key pair, causal) equals the linear layers' term (every weight a
    token uses, the recurrence included; the LM head's single position left out).
    Decode: the depth where the KV bytes a step reads equal the linear layers' weight
    bytes. A model whose attention is capped by windows (or absent) may never cross."""
    try:
        arch = describe_config(config)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        return {"prefill_length": None, "decode_depth": None, "note": f"cannot describe this config ({exc})"}
    kv_dtype = dtype if dtype in BYTES else "float32"
    body = 2.0 * _body_params(arch) + _recurrence_flops(arch)
    layers = arch.kv_layers if arch.is_decoder else ()

    def prefill_gap(length: float) -> float:
        n = int(length)
        if arch.is_decoder:
            attention = sum(_pair_flops(arch, layer) * _attended(n, layer.window, True) for layer in layers)
        else:
            attention = arch.num_layers * _pair_flops(arch, None) * _attended(n, None, False)
        return attention - body * n

    weights = _body_params(arch) * BYTES[kv_dtype]

    def decode_gap(depth: float) -> float:
        return kv_bytes(arch, int(depth), kv_dtype) - weights

    prefill = _first_crossing(prefill_gap) if (layers or not arch.is_decoder) else None
    decode = _first_crossing(decode_gap) if layers else None
    note = None if layers or not arch.is_decoder else "no attention layer: attention never takes over"
    return {"prefill_length": prefill, "decode_depth": decode, "note": note}
