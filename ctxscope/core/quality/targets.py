"""Log-probabilities of the last few positions only: never ``length × vocab`` logits.

A 49k-token vocabulary at 8k positions is 1.6 GB of float32 logits for one sequence;
the quality passes need the logits of K targets. Models whose forward takes
``logits_to_keep`` (transformers' causal LMs) compute just those; others run the base
model and apply the LM head to the kept hidden states.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch


_TAKES_KEEP: dict[type, bool] = {}


def takes_logits_to_keep(cls: type) -> bool:
    """Whether a model class's forward declares ``logits_to_keep``."""
    if cls not in _TAKES_KEEP:  # asked once per model class, not per forward
        _TAKES_KEEP[cls] = "logits_to_keep" in inspect.signature(getattr(cls, "forward")).parameters
    return _TAKES_KEEP[cls]


def last_logits(model: Any, ids: torch.Tensor, keep: int, *, use_keep: bool | None = None) -> torch.Tensor:
    """Float32 logits ``[batch, keep, vocab]`` of the last ``keep`` positions of ``ids``.

    One forward with no cache. ``use_keep`` forces (``True``) or bypasses (``False``)
    ``logits_to_keep``; by default it is used where the model's forward declares it.
    """
    if keep < 1 or keep > ids.shape[-1]:
        raise ValueError(f"keep must be within 1..{ids.shape[-1]}, not {keep}")
    if use_keep is None:
        use_keep = takes_logits_to_keep(type(model))
    if use_keep:
        out = model(input_ids=ids, use_cache=False, logits_to_keep=keep)
        kept: torch.Tensor = out.logits[:, -keep:].float()
        return kept
    base = getattr(model, getattr(model, "base_model_prefix", ""), None) or model.get_decoder()
    hidden = base(input_ids=ids, use_cache=False).last_hidden_state[:, -keep:]
    return _head(model, hidden)  # Gemma-2 squashes its logits there, as the causal-LM forward would


def _head(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    logits: torch.Tensor = model.get_output_embeddings()(hidden).float()
    cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def _call(model: Any, ids: torch.Tensor, keep: int, cache: Any) -> tuple[torch.Tensor, Any]:
    """Float32 logits of the last ``keep`` positions of one call that reads and fills ``cache``."""
    from ctxscope.core.model.compat import cache_kwargs, output_cache

    if takes_logits_to_keep(type(model)):
        out = model(input_ids=ids, use_cache=True, logits_to_keep=keep, **cache_kwargs(model, cache))
        return out.logits[:, -keep:].float(), output_cache(out) or cache
    base = getattr(model, getattr(model, "base_model_prefix", ""), None) or model.get_decoder()
    out = base(input_ids=ids, use_cache=True, **cache_kwargs(base, cache))
    return _head(model, out.last_hidden_state[:, -keep:]), output_cache(out) or cache


def cached_logits(model: Any, ids: torch.Tensor, keep: int, make_cache: Callable[[int], Any]) -> torch.Tensor:
    """The logits of :func:`last_logits`, read through a KV cache: the first
    ``T − keep + 1`` tokens are prefilled into a fresh ``make_cache(T)``, then the last
    ``keep − 1`` tokens run as one call that attends to what the cache holds (for a
    quantized cache, the dequantized keys and values) — as generation reads a prompt."""
    if keep < 1 or keep > ids.shape[-1]:
        raise ValueError(f"keep must be within 1..{ids.shape[-1]}, not {keep}")
    split = ids.shape[-1] - keep + 1
    first, cache = _call(model, ids[:, :split], 1, make_cache(ids.shape[-1]))
    if keep == 1:
        return first
    rest, _ = _call(model, ids[:, split:], keep - 1, cache)
    return torch.cat([first, rest], dim=1)


def target_logprobs(model: Any, ids: torch.Tensor, targets: torch.Tensor,
                    cache: Callable[[int], Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of ``targets`` (``[batch, K]``) given ``ids`` (``[batch, T]``)
    whose last K − 1 tokens are ``targets[:, :-1]``, and the greedy (arg-max) token at
    each of those K positions. The logits at position ``T − K + j`` predict ``targets[:, j]``.
    ``cache``: read the context through a fresh cache of a KV strategy
    (:func:`cached_logits`) instead of one cache-less forward.
    """
    k = targets.shape[-1]
    logits = last_logits(model, ids, k) if cache is None else cached_logits(model, ids, k, cache)
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked, logits.argmax(-1)
