"""Inputs of exactly L tokens per sequence."""

from __future__ import annotations

from typing import Any

import torch

from ctxscope.core.model.modelinfo import text_config

_SPECIAL_ATTRS = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id",
                  "sep_token_id", "cls_token_id", "mask_token_id", "decoder_start_token_id")


def special_token_ids(config: Any) -> set[int]:
    """Ids a config declares special (``eos_token_id`` may be a list)."""
    ids: set[int] = set()
    for cfg in {id(config): config, id(text_config(config)): text_config(config)}.values():
        for attr in _SPECIAL_ATTRS:
            value = getattr(cfg, attr, None)
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, int) and item >= 0:
                    ids.add(item)
    return ids


def random_token_ids(length: int, batch_size: int, vocab_size: int, *, seed: int,
                     exclude: set[int] | frozenset[int] = frozenset()) -> torch.Tensor:
    """Seeded random ids of shape ``[batch_size, length]`` (CPU, int64), never special ids.

    The same (length, batch, vocab, seed) always gives the same tensor, so two runs
    measure the same inputs.
    """
    if length <= 0 or batch_size <= 0:
        raise ValueError("length and batch_size must be positive")
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[[i for i in exclude if i < vocab_size]] = False
    pool = allowed.nonzero().flatten()
    # Modulo 2**64, torch's seed range: unchanged for every seed that worked before, and
    # a large --seed (up to 2**63 - 1) no longer fails every point with an overflow.
    gen = torch.Generator().manual_seed((seed * 1_000_003 + length) % 2**64)
    return pool[torch.randint(len(pool), (batch_size, length), generator=gen)]
