"""Describe a model's architecture from its config (layers, heads, KV heads, window...)."""

from __future__ import annotations

from typing import Any

from ctxscope.core.results import ModelInfo


def text_config(config: Any) -> Any:
    """The language-model part of a (possibly multimodal) config."""
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def is_decoder_config(config: Any) -> bool:
    """True for causal LMs (prefill/decode), False for encoders (forward only)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    archs = [a for a in (getattr(config, "architectures", None) or []) if isinstance(a, str)]
    if any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs):
        return True
    if any(a.endswith(("ForMaskedLM", "ForSequenceClassification", "Model", "ForTokenClassification")) for a in archs):
        return False
    model_type = getattr(config, "model_type", "")
    # Encoders such as BERT also have a causal-LM head class; masked-LM support marks them.
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def modes_of(info: ModelInfo) -> tuple[str, ...]:
    """The measurement modes a model has: prefill and decode for a decoder, forward for
    an encoder."""
    return ("prefill", "decode") if info.is_decoder else ("forward",)


def _int(config: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def learned_positions(model: Any) -> int | None:
    """Positions a model with a *learned* position table can address (GPT-2's ``wpe``,
    BERT's ``position_embeddings``, OPT's offset table); ``None`` for rotary, ALiBi and
    other schemes that compute positions and so can run past their trained length.

    Beyond a learned table the lookup indexes out of range: an ``IndexError`` on CPU,
    a device-side assert on CUDA that leaves the whole process's CUDA context unusable.
    """
    import torch

    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1].lower()
        if isinstance(module, torch.nn.Embedding) and (leaf == "wpe" or "position" in leaf):
            return int(module.num_embeddings) - int(getattr(module, "offset", 0) or 0)
    return None


def describe(model: Any, config: Any, source: str, *, random_weights: bool, revision: str | None) -> ModelInfo:
    """Build the :class:`ModelInfo` of a loaded model (parameters counted once if tied)."""
    tc = text_config(config)
    heads = _int(tc, "num_attention_heads") or 0
    hidden = _int(tc, "hidden_size") or 0
    params = sum(p.numel() for p in model.parameters())  # parameters() already de-duplicates ties
    archs = getattr(config, "architectures", None) or [type(model).__name__]
    decoder = is_decoder_config(config)
    from ctxscope.core.model.layer_kinds import layer_kinds_of
    from ctxscope.core.model.moe import find_experts

    experts = find_experts(model, config)
    return ModelInfo(
        source=source,
        architecture=str(archs[0]),
        model_type=str(getattr(config, "model_type", "")),
        params=int(params),
        random_weights=random_weights,
        num_layers=_int(tc, "num_hidden_layers") or 0,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=_int(tc, "num_key_value_heads") or heads,
        head_dim=_int(tc, "head_dim") or (hidden // heads if heads else 0),
        vocab_size=_int(tc, "vocab_size") or 0,
        max_positions=_int(tc, "max_position_embeddings"),
        is_decoder=decoder,
        revision=revision,
        sliding_window=_int(tc, "sliding_window") if getattr(tc, "use_sliding_window", True) is not False else None,
        position_limit=learned_positions(model),
        layer_kinds=layer_kinds_of(config, model) if decoder else (),
        active_params=experts.active_params(int(params)) if experts else None,
    )
