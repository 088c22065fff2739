"""Greedy generation for the retrieval tasks whose answer is a list (RULER scores those
by what the model writes, in any order): one prefill into a fresh cache, then one token
at a time, arg-max, until the end-of-text token, a blank line, the next "Question" or
the room the prompt left. Untimed, like every quality pass; the cache is the pass's own.

Scoring follows RULER's string match (recall: the share of expected strings found in
the answer), with whole-word matching so a 7-digit value is not found inside a longer
number; a distractor value in the answer is a false retrieval."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ctxscope.core.model.compat import cache_kwargs, output_cache
from ctxscope.core.quality.tasks import TaskPrompt
from ctxscope.core.quality.targets import takes_logits_to_keep

_STOPS = ("\n\n", "Question")


def greedy(model: Any, device: torch.device, ids: np.ndarray, max_new: int, tokenizer: Any,
           make_cache: Callable[[int], Any] | None = None) -> str:
    """The greedy continuation of ``ids`` (at most ``max_new`` tokens), as text;
    ``make_cache``: a fresh cache of a KV strategy for that many tokens (default: dynamic)."""
    from transformers import DynamicCache

    eos = {t for t in (getattr(tokenizer, "eos_token_id", None), getattr(model.config, "eos_token_id", None))
           if isinstance(t, int)}
    keep = {"logits_to_keep": 1} if takes_logits_to_keep(type(model)) else {}
    x = torch.from_numpy(np.ascontiguousarray(ids)).unsqueeze(0).to(device)
    cache = DynamicCache(config=model.config) if make_cache is None else make_cache(len(ids) + max_new)
    out_ids: list[int] = []
    with torch.inference_mode():
        out = model(input_ids=x, use_cache=True, **cache_kwargs(model, cache), **keep)
        for _ in range(max_new):
            token = int(out.logits[0, -1].argmax())
            if token in eos:
                break
            out_ids.append(token)
            text = tokenizer.decode(out_ids).lstrip()  # an answer may start on its own line
            if any(stop in text for stop in _STOPS):
                break
            cache = output_cache(out) or cache
            out = model(input_ids=torch.tensor([[token]], device=device), use_cache=True,
                        **cache_kwargs(model, cache), **keep)
    text = str(tokenizer.decode(out_ids))
    lead = len(text) - len(text.lstrip())
    for stop in _STOPS:
        text = text[:lead] + text[lead:].split(stop)[0]
    return text


def contains(text: str, value: str) -> bool:
    """``value`` in ``text`` as a whole word, ignoring case."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text, re.IGNORECASE) is not None


def score(answer: str, prompt: TaskPrompt) -> tuple[bool | None, float | None, int]:
    """(every expected string found — ``None`` when nothing is expected, as in the
    wrong-key control —, the share found, how many distractors the answer contains)."""
    hits = sum(contains(answer, v) for v in prompt.expected)
    false = sum(contains(answer, v) for v in prompt.distractors)
    if not prompt.expected:
        return None, None, false
    return hits == len(prompt.expected), hits / len(prompt.expected), false


def run_trial(model: Any, device: torch.device, prompt: TaskPrompt, tokenizer: Any,
              cache: Callable[[int], Any] | None = None) -> tuple[bool | None, float | None, int, str]:
    """Generate and score one trial: (found, recall, false hits, the answer)."""
    answer = greedy(model, device, prompt.ids, prompt.max_new, tokenizer, make_cache=cache)
    found, recall, false = score(answer, prompt)
    return found, recall, false, answer
