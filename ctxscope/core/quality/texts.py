"""The long real text the quality passes read: a shipped novel or the user's own file.

A text is read whole, checked (UTF-8, not binary, not empty) and tokenised once per
sweep. It is never tiled: repeating a text lets a model copy what it has already seen
and fakes a benefit from context, so lengths it cannot supply are refused instead.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctxscope._resources import resource_path
from ctxscope.core.errors import BadInputError
from ctxscope.core.quality.config import TEXTS

MAX_TEXT_BYTES = 64 * 1024**2


@dataclass(frozen=True, slots=True)
class Document:
    """A text as read: its name (a shipped name or the file's name), where it comes
    from, the text and a SHA-256 of its UTF-8 bytes (what runs compare on)."""

    name: str
    source: str
    text: str
    sha256: str


def read_document(text: str) -> Document:
    """Read a shipped text by name, or a UTF-8 file by path.

    Raises
    ------
    BadInputError
        No such file, larger than 64 MiB, binary, not UTF-8, or empty.
    """
    if text in TEXTS:
        file, source = TEXTS[text]
        data = gzip.decompress(resource_path("texts", file).read_bytes())
        return Document(name=text, source=source, text=data.decode("utf-8"), sha256=hashlib.sha256(data).hexdigest())
    from ctxscope.core.files import read_limited, why_unreadable

    path = Path(text).expanduser()
    try:
        data = read_limited(path, MAX_TEXT_BYTES)  # bounded: a device or FIFO claims 0 bytes
    except FileNotFoundError:
        raise BadInputError(f"--quality-text {text}: no such file (use {', '.join(TEXTS)} or a UTF-8 text file)") \
            from None
    except OSError as exc:
        raise BadInputError(f"--quality-text {text}: {why_unreadable(exc)}") from None
    if b"\x00" in data[:65536]:
        raise BadInputError(f"--quality-text {text}: a binary file, not text")
    try:
        body = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"--quality-text {text}: not UTF-8 text (byte {exc.start})") from None
    if not body.strip():
        raise BadInputError(f"--quality-text {text}: the file is empty")
    return Document(name=path.name, source=str(path.resolve()), text=body, sha256=hashlib.sha256(data).hexdigest())


def tokenize(document: Document, tokenizer: Any) -> np.ndarray:
    """The whole text's token ids (no special tokens), as int64.

    Tokenised in one call so token boundaries are the text's own; the tokenizer's
    "longer than the maximum length" notice is meant for model inputs and is muted.
    """
    ids = tokenizer(document.text, add_special_tokens=False, verbose=False)["input_ids"]
    out = np.asarray(ids, dtype=np.int64)
    if out.size == 0:
        raise BadInputError(f"--quality-text {document.name}: the text has no tokens")
    return out


def sentence_ends(ids: np.ndarray, tokenizer: Any) -> np.ndarray:
    """Boolean mask of tokens that end a sentence or a line: where a needle can be put
    without splitting a word or a sentence."""
    unique = np.unique(ids)
    texts = tokenizer.convert_ids_to_tokens(unique.tolist())
    decoded = [tokenizer.convert_tokens_to_string([t]) if isinstance(t, str) else "" for t in texts]
    ending = {int(i) for i, s in zip(unique, decoded)
              if s.endswith("\n") or s.rstrip(" \"'”’").endswith((".", "!", "?"))}
    return np.isin(ids, np.fromiter(ending, dtype=np.int64, count=len(ending)))
