"""Loss vs available context: the same K target tokens, read after C tokens of the text.

Windows are placed once per text (independent of the lengths asked for, as long as the
text allows), so two runs of one text score the same tokens and their curves compare.
Every input is one contiguous slice of the text: nothing is tiled or repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ctxscope.core.errors import BadInputError
from ctxscope.core.quality.targets import target_logprobs


def longest_context(n_tokens: int, target_tokens: int, windows: int) -> int:
    """The longest context a text of ``n_tokens`` supplies before each of ``windows``
    disjoint windows of ``target_tokens`` (windows packed right after that context)."""
    return max(0, n_tokens - windows * target_tokens)


def place_windows(n_tokens: int, target_tokens: int, windows: int, longest: int) -> tuple[int, ...]:
    """Start offsets of the target windows: centred in ``windows`` equal parts of the
    text after ``max(min(n_tokens // 2, n_tokens - windows * target_tokens), longest)``.
    For every context up to that the windows do not depend on the lengths asked for;
    they never overlap and never run past the end (a text whose second half is shorter
    than the windows gets them packed at its end).

    Raises
    ------
    BadInputError
        When the text cannot supply ``longest`` tokens before every window.
    """
    most = longest_context(n_tokens, target_tokens, windows)
    if longest > most:
        raise BadInputError(f"the text has {n_tokens:,} tokens: with {windows} windows of {target_tokens} target "
                            f"tokens it supplies contexts up to {most:,} tokens, not {longest:,} (texts are never "
                            "tiled: use shorter lengths, fewer windows or a longer --quality-text)")
    # The same bound as the check above: half the text unless the windows need more.
    low = max(min(n_tokens // 2, most), longest)
    part = (n_tokens - low) / windows
    return tuple(int(low + part * (i + 0.5) - target_tokens / 2) for i in range(windows))


def window_input(ids: np.ndarray, start: int, context: int, target_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(model input, targets) for one window at one context: the ``context`` tokens
    before the window and the window's first K − 1 tokens (the last target is only
    predicted), and the K target tokens. Both are views of one slice of ``ids``."""
    if context < 1 or start - context < 0 or start + target_tokens > ids.shape[0]:
        raise ValueError(f"window at {start} with context {context} is outside the text")
    return ids[start - context:start + target_tokens - 1], ids[start:start + target_tokens]


def positions_needed(context: int, target_tokens: int, prefix: int = 0) -> int:
    """Positions one loss forward occupies (``prefix``: a BOS before the context)."""
    return prefix + context + target_tokens - 1


def window_nll(model: object, device: torch.device, ids: np.ndarray, start: int, context: int,
               target_tokens: int, prefix: np.ndarray | None = None,
               cache: Callable[[int], Any] | None = None) -> float:
    """Mean negative log-likelihood (nats/token) of the window's K targets, the input
    preceded by ``prefix`` (the BOS a model expects at the start of its text: a window
    cut from the middle of a text is still a text to it); ``cache``: read through a fresh
    cache of a KV strategy (:func:`~ctxscope.core.quality.targets.target_logprobs`)."""
    inputs, targets = window_input(ids, start, context, target_tokens)
    if prefix is not None and prefix.size:
        inputs = np.concatenate([prefix, inputs])
    x = torch.from_numpy(np.ascontiguousarray(inputs)).unsqueeze(0).to(device)
    y = torch.from_numpy(np.ascontiguousarray(targets)).unsqueeze(0).to(device)
    with torch.inference_mode():
        logp, _ = target_logprobs(model, x, y, cache=cache)
    return float(-logp.mean())
