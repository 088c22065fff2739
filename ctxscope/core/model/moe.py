"""Mixture-of-experts: how many parameters a token really uses.

A router sends each token to its top-k of E experts, so a token multiplies through
k/E of the expert weights (shared experts, attention, norms and the router always run).
The expert weights are found in the architecture itself: transformers 5 fuses a layer's
experts into 3-d parameters under an ``experts`` module (``experts.gate_up_proj`` of shape
E × 2I × H), and older or remote code keeps a list ``experts.0``, ``experts.1``…
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NUM_EXPERTS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
_TOP_K = ("num_experts_per_tok", "moe_topk", "top_k", "num_selected_experts")
_LISTED = re.compile(r"(^|\.)experts\.\d+\.")


@dataclass(frozen=True, slots=True)
class Experts:
    """The routed experts of a model: E experts, k per token, their parameter count."""

    num_experts: int
    top_k: int
    expert_params: int  # every routed expert of every layer

    def active_params(self, total: int) -> int:
        """Parameters one token uses: all but the (E − k)/E of the routed experts it skips."""
        return total - self.expert_params + self.expert_params * self.top_k // self.num_experts


def _int(config: Any, names: tuple[str, ...]) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def find_experts(model: Any, config: Any) -> Experts | None:
    """The routed experts of ``model`` (any device, the meta device included), or ``None``
    for a dense model (or one whose config names no expert count and top-k)."""
    from ctxscope.core.model.modelinfo import text_config

    tc = text_config(config)
    e, k = _int(tc, _NUM_EXPERTS), _int(tc, _TOP_K)
    if e is None or k is None or k >= e:
        return None
    total = 0
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        fused = ".experts." in f".{name}" and p.dim() == 3 and int(p.shape[0]) == e
        if fused or _LISTED.search(name):
            seen.add(id(p))
            total += int(p.numel())
    return Experts(num_experts=e, top_k=k, expert_params=total) if total else None
