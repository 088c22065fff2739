"""The capture attention function, registered through transformers' AttentionInterface.

It returns the normal attention output (an exact softmax, queries in chunks) and, for the
layers being recorded, feeds each chunk's probabilities to an accumulator. Memory is
O(chunk · L) per layer, never O(heads · L²). Registered under a name that contains none
of ``sdpa``, ``flash`` or ``flex`` (transformers keys behaviour on those substrings),
with sdpa's mask function, so it receives boolean masks (causal, sliding, padding) — or
``None`` where sdpa itself would use ``is_causal``.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import torch

NAME = "ctxscope_capture"
_registered = False
_lock = threading.Lock()


class Accumulator(Protocol):
    def budget_for(self, batch: int, keys: int, module: torch.nn.Module) -> int: ...

    def wants(self, layer: int | None) -> bool: ...

    def add(self, layer: int, probs: torch.Tensor, allowed: torch.Tensor, q_start: int, causal: bool) -> None: ...


_active: dict[str, Accumulator | None] = {"acc": None}


def set_accumulator(acc: Accumulator | None) -> None:
    _active["acc"] = acc


def register() -> str:
    """Register the function and its mask function once; returns the implementation name."""
    global _registered
    with _lock:
        if not _registered:
            from transformers import AttentionInterface
            from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

            AttentionInterface.register(NAME, capture_attention_forward)
            AttentionMaskInterface.register(NAME, sdpa_mask)
            _registered = True
    return NAME


def capture_attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                              softcap: float | None = None, is_causal: bool | None = None,
                              **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Same contract as transformers' sdpa/eager functions: query [B, H, Lq, D] with
    positions applied, key/value [B, Hkv, Lk, D] not repeated for GQA; returns
    ([B, Lq, H, Dv], None)."""
    acc = _active["acc"]
    b, h, lq, d = query.shape
    hkv, lk = key.shape[1], key.shape[2]
    groups = h // hkv
    scale = scaling if scaling is not None else d**-0.5
    causal = (is_causal if is_causal is not None else getattr(module, "is_causal", True)) and lq > 1
    layer = getattr(module, "layer_idx", None)
    record = acc is not None and acc.wants(layer)
    budget = acc.budget_for(b, lk, module) if acc is not None else 1 << 24
    # Group query heads by their KV head and fold the group into the rows, so each
    # chunk is a plain [rows, D] @ [D, Lk] product per KV head: broadcasting K over the
    # groups instead would materialise a G-fold copy of K (and V) on every chunk.
    qg = query.reshape(b, hkv, groups, lq, d)
    k = key.transpose(-1, -2)  # [B, Hkv, D, Lk]
    dv = value.shape[-1]
    out = torch.empty(b, hkv, groups, lq, dv, dtype=query.dtype, device=query.device)
    offset = lk - lq  # queries are the last lq positions
    chunk = max(1, min(lq, budget // max(1, b * h * lk)))
    key_pos = torch.arange(lk, device=query.device)
    for q0 in range(0, lq, chunk):
        q1 = min(lq, q0 + chunk)
        # In-place from here on: every extra full-size temporary is chunk · L elements.
        c = q1 - q0
        rows = qg[..., q0:q1, :].reshape(b, hkv, groups * c, d)
        scores = torch.matmul(rows, k).mul_(scale).view(b, hkv, groups, c, lk)  # model dtype, as eager
        if softcap is not None:
            scores.div_(softcap).tanh_().mul_(softcap)
        allowed = None
        if attention_mask is not None:
            mask = attention_mask[..., q0:q1, :lk]
            mask = mask.reshape(mask.shape[0], -1, 1, q1 - q0, lk) if mask.dim() == 4 else mask
            if mask.dtype == torch.bool:
                allowed = mask
                scores.masked_fill_(~mask, float("-inf"))
            else:
                scores.add_(mask)
        elif causal:
            allowed = key_pos[None, :] <= (torch.arange(q0, q1, device=query.device) + offset)[:, None]
            scores.masked_fill_(~allowed, float("-inf"))
        if record:
            allowed_counts = (torch.isfinite(scores) if allowed is None else allowed.expand(scores.shape)).sum(-1)
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
        del scores
        probs.nan_to_num_(nan=0.0)  # rows with every key masked (padding)
        pv = torch.matmul(probs.to(value.dtype).view(b, hkv, groups * c, lk), value)
        out[..., q0:q1, :] = pv.view(b, hkv, groups, c, dv)
        del pv
        if record and acc is not None and layer is not None:  # record implies both
            acc.add(int(layer), probs.reshape(b, h, q1 - q0, lk), allowed_counts.reshape(b, h, q1 - q0),
                    q0 + offset, causal)
        del probs
    return out.reshape(b, h, lq, -1).transpose(1, 2).contiguous(), None
