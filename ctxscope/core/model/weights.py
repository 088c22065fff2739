"""Fast, finite random weights for architectures built without a checkpoint."""

from __future__ import annotations

import torch

# A prime length, so tiled rows of a weight matrix do not line up exactly.
_POOL = 1_000_003


@torch.no_grad()
def fill_random_weights(model: torch.nn.Module, *, seed: int = 0, std: float = 0.02) -> None:
    """Overwrite every parameter with finite values, fast.

    Matrices get N(0, std) values tiled from one seeded pool (a broadcast copy: ~1 s
    for 1.1B parameters on a CPU, where ``normal_`` takes ~13 s); biases get 0 and
    other vectors (norm scales) 1. Latency and memory do not depend on the values, but
    uninitialised memory may hold NaN or denormals, which slow CPUs and break outputs.
    """
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(_POOL, generator=gen) * std
    pools: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
    seen: set[int] = set()
    for name, param in model.named_parameters(remove_duplicate=True):
        if id(param) in seen:
            continue
        seen.add(id(param))
        if param.dim() < 2:
            param.zero_() if name.endswith("bias") else param.fill_(1.0)
            continue
        key = (param.device, param.dtype)
        if key not in pools:
            pools[key] = base.to(device=param.device, dtype=param.dtype)
        pool = pools[key]
        flat = param.view(-1)
        whole = flat.numel() // _POOL
        if whole:
            flat[: whole * _POOL].view(whole, _POOL).copy_(pool.expand(whole, _POOL))
        rest = flat.numel() - whole * _POOL
        if rest:
            flat[whole * _POOL:].copy_(pool[:rest])
