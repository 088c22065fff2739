"""A decoder as a stack of layer kinds, and what each kind keeps in the cache — read off
the architecture itself, not off each family's config spelling.

Families name their layer pattern differently (``layer_types``, ``layers_block_type``,
``attn_layer_indices``, ``hybrid_override_pattern``…); transformers 5 normalises every one
of them into the cache layer types its ``DynamicCache`` builds (full / sliding / chunked
attention, linear attention, conv, hybrid, mlp). That mapping is transformers' own, so it
is the one read here. "linear_attention" covers both state-space (Mamba) and gated
delta-rule layers: the decoder layer's module classes tell them apart.

The sizes come from a forward pass of three tokens on the meta device (no memory, no
compute), in bfloat16: the cache then holds tensors of exactly the shapes transformers
allocates, and a state kept in float32 whatever the model's dtype (the recurrent states
of the reference kernels) shows as float32. Per token of KV and per layer of state, the
figures are the architecture's own — the analytic model agrees with the measured storage
by construction, and tests check it does on every family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ctxscope.core.results import LAYER_KIND_LABELS

KIND_LABELS = LAYER_KIND_LABELS  # how the layer kinds (core.results.LAYER_KINDS) read in words


_PROBE_TOKENS = 3


@dataclass(frozen=True, slots=True)
class KVLayer:
    """One layer holding keys and values."""

    kv_heads: int
    head_dim: int
    window: int | None  # tokens kept by a sliding layer after a prefill (None: all)
    v_head_dim: int | None = None  # when values differ from keys (None: same as head_dim)
    kind: str = "full_attention"

    def elements_per_token(self) -> int:
        return self.kv_heads * (self.head_dim + (self.v_head_dim if self.v_head_dim is not None else self.head_dim))


@dataclass(frozen=True, slots=True)
class StateLayer:
    """One layer holding a fixed-size state: elements of its convolution and recurrent
    states, and whether each is kept in float32 whatever the model's dtype."""

    kind: str
    conv_elements: int
    recurrent_elements: int
    conv_float32: bool = False
    recurrent_float32: bool = False

    def bytes(self, itemsize: int, batch: int = 1) -> int:
        conv = self.conv_elements * (4 if self.conv_float32 else itemsize)
        rec = self.recurrent_elements * (4 if self.recurrent_float32 else itemsize)
        return batch * (conv + rec)


@dataclass(frozen=True, slots=True)
class CacheLayout:
    kinds: tuple[str, ...]  # one per decoder layer
    kv_layers: tuple[KVLayer, ...]
    state_layers: tuple[StateLayer, ...]
    notes: tuple[str, ...] = ()


def _decoder_layers(model: Any, count: int) -> list[Any]:
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return list(module)
    return []


def _mixer_kind(layer: Any) -> str | None:
    if layer is None:
        return None
    names = " ".join(type(m).__name__ for m in layer.modules()).lower()
    if "deltanet" in names or "linearattention" in names or "lightning" in names:
        return "linear_attention"
    # A selective state space: Mamba's A (as A_log) and its skip term D. Gated delta-rule
    # layers have an A_log too, but no D; some families name the Mamba block "Mixer".
    leaves = {name.rsplit(".", 1)[-1] for name, _ in layer.named_parameters()}
    if "mamba" in names or {"A_log", "D"} <= leaves:
        return "mamba"
    return None


def _kind(cache_type: str, layer: Any | None) -> str:
    if cache_type in ("full_attention", "indexed_attention"):
        return "full_attention"
    if cache_type in ("sliding_attention", "chunked_attention"):
        return "sliding_attention"
    if cache_type == "linear_attention":
        return _mixer_kind(layer) or "linear_attention"
    if cache_type in ("hybrid", "hybrid_sliding"):
        return "hybrid"
    if cache_type == "conv":
        return "conv"
    return "mlp"


def layer_kinds_of(config: Any, model: Any) -> tuple[str, ...]:
    """One kind per decoder layer (:data:`KINDS`), from transformers' cache layer types and
    the layers' modules; ``model`` on any device (the meta device included). Empty where
    the config describes no cache layers (an encoder)."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    try:
        types, _ = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
    except (AttributeError, TypeError, ValueError):
        return ()
    layers = _decoder_layers(model, len(types))
    return tuple(_kind(t, layers[i] if i < len(layers) else None) for i, t in enumerate(types))


def attention_layers(kinds: tuple[str, ...]) -> tuple[int, ...]:
    """The decoder layers that attend (full, sliding or the attention half of a hybrid)."""
    return tuple(i for i, k in enumerate(kinds) if k in ("full_attention", "sliding_attention", "hybrid"))


def cache_layout(config: Any, model: Any) -> CacheLayout:
    """The layer kinds and cache layout of a decoder; ``model`` is the architecture on the
    meta device (``describe_config`` builds it once)."""
    from transformers import DynamicCache

    from ctxscope.core.model.compat import cache_kwargs
    from ctxscope.core.model.modelinfo import text_config

    tc = text_config(config)
    kinds = layer_kinds_of(config, model)
    cache = DynamicCache(config=config)
    notes: list[str] = []
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # the pass computes nothing: kernel fall-back notices are noise here
    try:
        probe = model.to(torch.bfloat16)
        with torch.inference_mode():
            probe(input_ids=torch.zeros(1, _PROBE_TOKENS, dtype=torch.long, device="meta"), use_cache=True,
                  **cache_kwargs(probe, cache))
    except Exception as exc:  # noqa: BLE001 (a model the meta device cannot run: sizes from the config)
        notes.append(f"cache sizes from the config, not the architecture (meta pass failed: {type(exc).__name__})")
        return _from_config(tc, cache, kinds, tuple(notes))
    finally:
        hf_logging.set_verbosity(verbosity)
    kv: list[KVLayer] = []
    states: list[StateLayer] = []
    for i, layer in enumerate(cache.layers):
        kind = kinds[i] if i < len(kinds) else "full_attention"
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if isinstance(keys, torch.Tensor) and isinstance(values, torch.Tensor) and keys.dim() == 4:
            window = getattr(layer, "sliding_window", None) if getattr(layer, "is_sliding", False) else None
            v_dim = int(values.shape[-1])
            kv.append(KVLayer(kv_heads=int(keys.shape[1]), head_dim=int(keys.shape[-1]),
                              window=window - 1 if window else None,
                              v_head_dim=None if v_dim == keys.shape[-1] else v_dim,
                              kind="sliding_attention" if window else "full_attention"))
        conv = [t for t in (getattr(layer, "conv_states", None) or {}).values() if isinstance(t, torch.Tensor)]
        rec = [t for t in (getattr(layer, "recurrent_states", None) or {}).values() if isinstance(t, torch.Tensor)]
        if conv or rec:
            states.append(StateLayer(kind=kind, conv_elements=sum(t.numel() for t in conv),
                                     recurrent_elements=sum(t.numel() for t in rec),
                                     conv_float32=any(t.dtype == torch.float32 for t in conv),
                                     recurrent_float32=any(t.dtype == torch.float32 for t in rec)))
    return CacheLayout(kinds=kinds, kv_layers=tuple(kv), state_layers=tuple(states), notes=tuple(notes))


def _from_config(tc: Any, cache: Any, kinds: tuple[str, ...], notes: tuple[str, ...]) -> CacheLayout:
    """The pre-architecture fallback: KV of every attention layer from the config's head
    counts; no state figures (they would be guesses)."""
    heads = int(getattr(tc, "num_attention_heads", 0) or 0)
    head_dim = int(getattr(tc, "head_dim", None) or (tc.hidden_size // heads if heads else 0))
    kv_heads = int(getattr(tc, "num_key_value_heads", None) or heads)
    kv = []
    for layer, kind in zip(cache.layers, kinds):
        if kind in ("full_attention", "sliding_attention", "hybrid"):
            window = getattr(layer, "sliding_window", None) if getattr(layer, "is_sliding", False) else None
            kv.append(KVLayer(kv_heads, head_dim, window - 1 if window else None,
                              kind="sliding_attention" if window else "full_attention"))
    extra = () if not any(k in ("linear_attention", "mamba", "conv", "hybrid") for k in kinds) else (
        "recurrent state not predicted",)
    return CacheLayout(kinds=kinds, kv_layers=tuple(kv), state_layers=(), notes=notes + extra)
