"""What a remote sends is text for a terminal, a table and the history: control
characters are stripped and lengths bounded before any of it is used.

A hostile or broken worker could otherwise clear the screen or rewrite what the user
sees (``ESC[2J``, cursor moves, bidi overrides), break a one-line error over many lines,
or store a megabyte-long host name in every run.
"""

from __future__ import annotations

import re
from typing import Any

#: The longest string kept from a remote (an error, a path, a name); longer ones are cut.
MAX_TEXT = 4096
#: The longest one-line message shown from a remote (its error, a cell's failure).
MAX_LINE = 1000
#: DNS names are at most 253 characters.
MAX_HOSTNAME = 253

# C0 and C1 controls, DEL, and the bidirectional overrides and isolates; tab and
# newline are kept where text may hold them (a token, a model's answer).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Whole terminal escape sequences (CSI: colours, cursor moves, clears; OSC: titles,
# links) go before the lone controls, so no '[31m' is left behind.
_ESCAPES = re.compile("\x1b\\[[0-?]*[ -/]*[@-~]|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)?|\x1b[@-Z\\\\-_]")
_BREAKS = re.compile(r"[\t\n]+")
# Subtrees whose strings are a model's text: tokens of an attention map, a quality
# item (the model's answer to a needle question). Their tabs and newlines are data.
_TEXT_KEYS = frozenset({"tokens", "item"})


def clean_text(text: str, limit: int = MAX_TEXT, *, one_line: bool = True) -> str:
    """``text`` without control characters, at most ``limit`` characters; ``one_line``
    also turns tabs and newlines into spaces."""
    if "\x1b" in text:
        text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub("", text)
    if one_line:
        text = _BREAKS.sub(" ", text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def clean_line(text: str, limit: int = MAX_LINE) -> str:
    """One line for the terminal: controls stripped, whitespace runs collapsed."""
    return clean_text(" ".join(text.split()), limit)


def clean_message(value: Any, *, one_line: bool = True) -> Any:
    """Every string in a parsed message, cleaned (:func:`clean_text`); keys too."""
    if isinstance(value, str):
        return clean_text(value, one_line=one_line)
    if isinstance(value, list):
        return [clean_message(v, one_line=one_line) for v in value]
    if isinstance(value, dict):
        return {clean_text(k, 200): clean_message(v, one_line=one_line and k not in _TEXT_KEYS)
                for k, v in value.items()}
    return value
