"""Needle retrieval: a fact with a random 5-digit key planted at a depth of real text,
then a question; scored by whether greedy decoding reproduces the key and by the key's
log-probability.

One forward per trial: the prompt followed by the key's tokens (teacher forcing).
Greedy decoding reproduces the key exactly when the arg-max at every key position is
the key's token (each step then sees the same prefix greedy decoding would), so the
match and the graded log-probability come from the same pass.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ctxscope.core.quality.targets import target_logprobs

FACT = " The secret number is {key}."
QUESTION = "\n\nQuestion: What is the secret number mentioned in the text above?\nAnswer: The secret number is"
SNAP_TOKENS = 64  # how far a depth may move to land on a sentence end


@dataclass(frozen=True, slots=True)
class NeedlePrompt:
    """Token ids of one trial: ``ids`` is what the model reads (the prompt and all but
    the key's last token), ``key_ids`` what it should produce."""

    ids: np.ndarray
    key_ids: np.ndarray
    key: str
    position: int | None


def trial_key(seed: int, *parts: object) -> str:
    """A 5-digit key fixed by the sweep seed and the trial (reproducible, never 0-led)."""
    return str(random.Random(f"{seed}:{':'.join(map(str, parts))}").randint(10000, 99999))


def encode(tokenizer: Any, text: str) -> np.ndarray:
    return np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)


def overhead(tokenizer: Any) -> int:
    """Tokens besides the haystack: fact, question and the key's forced tokens (the
    same for every 5-digit key with the tokenizers seen; measured on one)."""
    key = "12345"
    return len(encode(tokenizer, FACT.format(key=key))) + len(encode(tokenizer, QUESTION)) + len(
        encode(tokenizer, " " + key)) - 1


def haystack_offset(n_tokens: int, haystack: int, seed: int, seeds: int) -> int:
    """Where trial ``seed`` takes its haystack: ``seeds`` evenly spread places in the
    text, so trials read different passages."""
    room = max(0, n_tokens - haystack)
    return int(room * (seed + 0.5) / seeds)


def take_haystack(ids: np.ndarray, haystack: int, seed: int, seeds: int) -> tuple[int, np.ndarray]:
    """(offset, tokens) of trial ``seed``'s haystack of ``haystack`` tokens."""
    if haystack < 1:
        raise ValueError("no room for a haystack")
    offset = haystack_offset(ids.shape[0], haystack, seed, seeds)
    hay = ids[offset:offset + haystack]
    if hay.shape[0] < haystack:
        raise ValueError(f"the text is shorter than a {haystack}-token haystack")
    return offset, hay


def snap(ends: np.ndarray, offset: int, haystack: int, at: int) -> int:
    """Move an insertion point to just after the nearest sentence end within
    :data:`SNAP_TOKENS` (the ends and starts of the haystack stay where they are)."""
    if at <= 0 or at >= haystack:
        return at
    lo, hi = max(1, at - SNAP_TOKENS), min(haystack - 1, at + SNAP_TOKENS)
    window = ends[offset + lo - 1:offset + hi]  # ends[offset + q - 1]: the token before q ends a sentence
    candidates = np.nonzero(window)[0] + lo
    if candidates.size == 0:
        return at
    return int(candidates[np.argmin(np.abs(candidates - at))])


def build_prompt(ids: np.ndarray, ends: np.ndarray, tokenizer: Any, *, kind: str, length: int, depth: float | None,
                 seed: int, seeds: int, sweep_seed: int, prefix: np.ndarray | None = None) -> NeedlePrompt:
    """Exactly ``length`` tokens for ``grid`` and ``no-key`` trials (the haystack fills
    what ``prefix`` — the model's BOS, if it expects one —, fact, question and key
    leave); ``adjacent`` is the prefix, fact and question alone."""
    key = trial_key(sweep_seed, kind, length, depth, seed)
    fact, question, key_ids = encode(tokenizer, FACT.format(key=key)), encode(tokenizer, QUESTION), encode(
        tokenizer, " " + key)
    head = np.zeros(0, dtype=np.int64) if prefix is None else prefix
    if kind == "adjacent":
        return NeedlePrompt(np.concatenate([head, fact, question, key_ids[:-1]]), key_ids, key, len(head))
    haystack = length - len(head) - len(question) - (len(key_ids) - 1) - (len(fact) if kind == "grid" else 0)
    if haystack < 1:
        raise ValueError(f"length {length} leaves no room for a haystack")
    offset, hay = take_haystack(ids, haystack, seed, seeds)
    if kind == "no-key":
        return NeedlePrompt(np.concatenate([head, hay, question, key_ids[:-1]]), key_ids, key, None)
    at = snap(ends, offset, haystack, round((depth or 0.0) / 100 * haystack))
    return NeedlePrompt(np.concatenate([head, hay[:at], fact, hay[at:], question, key_ids[:-1]]), key_ids, key,
                        len(head) + at)


def score(model: Any, device: torch.device, prompt: NeedlePrompt, tokenizer: Any,
          cache: Callable[[int], Any] | None = None) -> tuple[bool, float, str]:
    """(greedy reproduces the key, log p(key | prompt) in nats, greedy answer text up to
    and including its first wrong token); ``cache``: the prompt read through a fresh cache
    of a KV strategy."""
    x = torch.from_numpy(np.ascontiguousarray(prompt.ids)).unsqueeze(0).to(device)
    y = torch.from_numpy(prompt.key_ids).unsqueeze(0).to(device)
    with torch.inference_mode():
        logp, greedy = target_logprobs(model, x, y, cache=cache)
    chosen = greedy[0].cpu().tolist()
    wanted = prompt.key_ids.tolist()
    wrong = next((j for j, (a, b) in enumerate(zip(chosen, wanted)) if a != b), None)
    if wrong is None:
        return True, float(logp.sum()), prompt.key
    return False, float(logp.sum()), tokenizer.decode(wanted[:wrong] + [chosen[wrong]])
