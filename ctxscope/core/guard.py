"""Refuse a point that cannot fit before it starts: a 1M-token prefill on a laptop must
be a skipped point with a reason, not three hours of swapping.

The prediction is a *lower bound* of the memory a pass allocates beyond the weights
already loaded — the KV cache it builds (exact, from the analytic model) plus the
hidden states a layer must hold at once — so the guard only refuses what cannot
possibly fit; anything it lets through is still measured, and out-of-memory there is
data as always.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psutil

from ctxscope.core.blocks import AnalyticBlock
from ctxscope.core.events import MemoryCheck as MemoryCheck  # the verdict is plain data (the wire carries it)
from ctxscope.core.modelinfo import text_config

if TYPE_CHECKING:
    from ctxscope.core.loading import LoadedModel

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def _intermediate(config: Any, hidden: int) -> int:
    tc = text_config(config)
    for name in ("intermediate_size", "n_inner", "ffn_dim", "d_ff"):
        value = getattr(tc, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 4 * hidden  # GPT-2 leaves n_inner unset: 4 × hidden


def activation_floor(config: Any, hidden: int, heads: int, length: int, batch: int, dtype: str,
                     attn_implementation: str) -> int:
    """Bytes a forward over ``length`` tokens cannot avoid holding at one moment: the
    residual stream and the normed input (2·hidden per token) and the MLP's intermediate
    activation (one, though gated MLPs hold two); eager attention adds one layer's
    heads × L × L score matrix."""
    size = BYTES.get(dtype, 4)
    floor = batch * length * (2 * hidden + _intermediate(config, hidden)) * size
    if attn_implementation == "eager":
        floor += batch * heads * length * length * size
    return floor


def available_bytes(device: Any) -> int | None:
    """Memory a pass could still get: on CUDA the driver's free memory plus what
    PyTorch's allocator holds unused; on CPU what the OS reports available."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type == "cpu":
        return int(psutil.virtual_memory().available)
    return None  # MPS and others: no reliable free-memory figure


def check_point(loaded: LoadedModel, analytic: AnalyticBlock | None, mode: str, length: int, batch: int,
                available: int | None) -> MemoryCheck:
    """The lower-bound need of ``mode`` at ``length`` against ``available`` bytes.
    Decode at depth L needs its untimed prefill first, so it needs what prefill needs."""
    info = loaded.info
    dtype = str(loaded.dtype).removeprefix("torch.")
    kv = 0
    if info.is_decoder and analytic:
        for row in analytic.get("rows") or []:
            if isinstance(row, dict) and row.get("length") == length:
                kv = int(row.get("kv_cache_bytes") or 0) * batch
    act = activation_floor(loaded.config, info.hidden_size, info.num_heads, length, batch, dtype,
                           loaded.attn_implementation)
    return MemoryCheck(mode=mode, length=length, need_bytes=kv + act, kv_bytes=kv, available_bytes=available,
                       where=str(loaded.device))
