"""Inputs for the attention pass: random tokens, the shipped sample text or a user's
file, tokenised and tiled or cut to exactly L, with an optional needle sentence placed
at a depth and marked as a span."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ctxscope._resources import resource_path
from ctxscope.core.errors import BadInputError

if TYPE_CHECKING:
    from ctxscope.core.model.loading import LoadedModel

MAX_TEXT_BYTES = 64 * 1024**2


@dataclass(frozen=True, slots=True)
class AttentionInput:
    ids: torch.Tensor  # [batch, L] on the CPU
    span: tuple[int, int] | None  # the needle's tokens, [start, end)
    text_kind: str  # "random", "sample" or the file name
    tokens: tuple[str, ...] | None  # each token's text, when real text was used


def load_tokenizer(loaded: LoadedModel) -> Any | None:
    """The checkpoint's tokenizer, or ``None`` (presets and config files have none)."""
    from ctxscope.core.model.demos import DEMOS

    source = loaded.info.source
    if source.startswith("preset:") or source.endswith(".json"):
        return None
    location = source
    if source.startswith("demo:") and source.removeprefix("demo:") in DEMOS:
        from ctxscope.core.model.demos import resolve_demo

        location = str(resolve_demo(source.removeprefix("demo:")))
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(location, revision=loaded.info.revision)
    except Exception:  # no tokenizer files: callers say what that means
        return None


def _read_text(text: str) -> tuple[str, str]:
    if text == "sample":
        return resource_path("texts", "sample.txt").read_text(encoding="utf-8"), "sample"
    from ctxscope.core.files import read_text_limited, why_unreadable

    path = Path(text).expanduser()
    try:
        return read_text_limited(path, MAX_TEXT_BYTES), path.name  # bounded: a FIFO or device claims 0 bytes
    except FileNotFoundError:
        raise BadInputError(f"--text {text}: no such file (use random, sample or a text file)") from None
    except UnicodeDecodeError:
        raise BadInputError(f"--text {text}: not UTF-8 text") from None
    except OSError as exc:
        raise BadInputError(f"--text {text}: {why_unreadable(exc)}") from None


def check_text(text: str) -> None:
    """Read ``--text`` now as the attention pass will, so a bad file is refused before
    any model loads (``random`` and ``sample`` need nothing)."""
    if text not in ("random", "sample"):
        _read_text(text)


def build_input(loaded: LoadedModel, length: int, *, batch: int = 1, text: str = "random", seed: int = 0,
                needle: str | None = None, needle_depth: float = 50.0, tokenizer: Any = None) -> AttentionInput:
    """Exactly ``length`` tokens per sequence. Needle and real text need the model's
    tokenizer; random tokens do not."""
    from ctxscope.core.measure.inputs import random_token_ids, special_token_ids

    tokens: tuple[str, ...] | None = None
    if not 0 <= needle_depth <= 100:
        raise BadInputError(f"--needle-depth {needle_depth}: use a percentage from 0 to 100")
    if (text != "random" or needle) and tokenizer is None:
        raise BadInputError(f"{loaded.info.source} has no tokenizer (random weights): use --text random and no needle")
    if text == "random":
        ids = random_token_ids(length, batch, loaded.info.vocab_size, seed=seed, exclude=special_token_ids(loaded.config))
        kind = "random"
    else:
        body, kind = _read_text(text)
        pieces = tokenizer(body, add_special_tokens=False)["input_ids"]
        if not pieces:
            raise BadInputError(f"--text {text}: the text has no tokens")
        tiled = (pieces * (length // len(pieces) + 1))[:length]
        ids = torch.tensor([tiled] * batch, dtype=torch.long)
    span = None
    if needle:
        needle_ids = tokenizer(" " + needle.strip(), add_special_tokens=False)["input_ids"]
        if not needle_ids or len(needle_ids) >= length:
            raise BadInputError(f"the needle has {len(needle_ids)} tokens: it must be shorter than L={length}")
        start = round(needle_depth / 100 * (length - len(needle_ids)))
        ids[:, start:start + len(needle_ids)] = torch.tensor(needle_ids)
        span = (start, start + len(needle_ids))
    if tokenizer is not None and (kind != "random" or span is not None):
        tokens = tuple(str(t) for t in tokenizer.convert_ids_to_tokens(ids[0].tolist()))
    return AttentionInput(ids=ids, span=span, text_kind=kind, tokens=tokens)
