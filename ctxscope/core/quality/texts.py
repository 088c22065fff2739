"""The long real text the quality passes read: a shipped novel or the user's own file.

A text is read whole, checked (decodable in its encoding — UTF-8 unless told —, not
binary, not empty), its line ends normalised (CRLF and lone CR become LF: a Windows
copy of a text is the same text) and tokenised once per sweep. It is never tiled:
repeating a text lets a model copy what it has already seen and fakes a benefit from
context, so lengths it cannot supply are refused instead.

A famous text may be in a model's training data, memorised: its loss and what context
buys on it can look better than on text the model has never seen. The user's own
documents are the honest test (:data:`MEMORISED_NOTE`).
"""

from __future__ import annotations

import codecs
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
MEMORISED_NOTE = ("a famous, public text: it may be in the model's training data (memorised), so its loss and what "
                  "context buys on it can look better than on unseen text; your own documents (--quality-text FILE) "
                  "are the honest test")


def check_encoding(encoding: str | None) -> None:
    """Refuse an encoding Python does not know, before anything is read."""
    if encoding is None:
        return
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise BadInputError(f"--quality-text-encoding {encoding}: not an encoding Python knows "
                            "(e.g. utf-8, cp1252, latin-1, utf-16)") from None


def normalise(text: str) -> str:
    """CRLF and lone CR line ends become LF (and a UTF-8 byte-order mark goes)."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True, slots=True)
class Document:
    """A text as read: its name (a shipped name or the file's name), where it comes
    from, the text (line ends normalised) and a SHA-256 of its UTF-8 bytes (what runs
    compare on: the same text in CRLF or another encoding compares equal)."""

    name: str
    source: str
    text: str
    sha256: str
    shipped: bool = False  # one of the shipped novels: famous, maybe memorised


def _document(name: str, source: str, body: str, shipped: bool = False) -> Document:
    body = normalise(body)
    return Document(name=name, source=source, text=body, sha256=hashlib.sha256(body.encode("utf-8")).hexdigest(),
                    shipped=shipped)


def read_document(text: str, encoding: str | None = None) -> Document:
    """Read a shipped text by name, or a text file by path (UTF-8 unless ``encoding``).

    Raises
    ------
    BadInputError
        No such file, larger than 64 MiB, binary, not decodable in its encoding (a
        UTF-8 failure names ``--quality-text-encoding``), an unknown encoding, or empty.
    """
    if text in TEXTS:
        file, source = TEXTS[text]
        data = gzip.decompress(resource_path("texts", file).read_bytes())
        return _document(text, source, data.decode("utf-8"), shipped=True)
    check_encoding(encoding)
    from ctxscope.core.files import read_limited, why_unreadable

    path = Path(text).expanduser()
    try:
        data = read_limited(path, MAX_TEXT_BYTES)  # bounded: a device or FIFO claims 0 bytes
    except FileNotFoundError:
        raise BadInputError(f"--quality-text {text}: no such file (use {', '.join(TEXTS)} or a UTF-8 text file)") \
            from None
    except OSError as exc:
        raise BadInputError(f"--quality-text {text}: {why_unreadable(exc)}") from None
    squashed = (encoding or "").lower().replace("-", "").replace("_", "")
    wide = squashed.startswith(("utf16", "utf32"))
    if b"\x00" in data[:65536] and not wide:  # UTF-16/32 text has NUL bytes of its own
        raise BadInputError(f"--quality-text {text}: a binary file, not text")
    try:
        body = data.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        if encoding is None:
            raise BadInputError(f"--quality-text {text}: not UTF-8 text (byte {exc.start}); if it is in another "
                                "encoding, give it: --quality-text-encoding cp1252 (or latin-1, utf-16, ...)") from None
        raise BadInputError(f"--quality-text {text}: not {encoding} text (byte {exc.start})") from None
    if not body.strip():
        raise BadInputError(f"--quality-text {text}: the file is empty")
    return _document(path.name, str(path.resolve()), body)


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


def bos_prefix(tokenizer: Any) -> np.ndarray:
    """The BOS token a model's tokenizer puts before a text (empty when it adds none):
    each loss window and needle prompt starts with it, as the model saw text in
    training. Asked of the tokenizer itself, not assumed from ``bos_token`` (many
    tokenizers define one and never add it)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return np.zeros(0, dtype=np.int64)
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    special = tokenizer("a", add_special_tokens=True)["input_ids"]
    adds = bool(special) and special[0] == bos and (not plain or plain[0] != bos)
    return np.asarray([bos] if adds else [], dtype=np.int64)


def sentence_ends(ids: np.ndarray, tokenizer: Any) -> np.ndarray:
    """Boolean mask of tokens that end a sentence or a line: where a needle can be put
    without splitting a word or a sentence."""
    unique = np.unique(ids)
    texts = tokenizer.convert_ids_to_tokens(unique.tolist())
    decoded = [tokenizer.convert_tokens_to_string([t]) if isinstance(t, str) else "" for t in texts]
    ending = {int(i) for i, s in zip(unique, decoded)
              if s.endswith("\n") or s.rstrip(" \"'”’").endswith((".", "!", "?"))}
    return np.isin(ids, np.fromiter(ending, dtype=np.int64, count=len(ending)))
