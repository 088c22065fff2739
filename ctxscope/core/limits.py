"""Bounds on numbers that come from outside: options, run files, the wire.

Python's integers have no limit, but SQLite's are 64-bit (a 10³⁰ ``batch_size`` was an
``OverflowError`` when the run reached the history), torch's seeds are 64-bit (every
point an error), and a thread count beyond the machine's cores asks the OS for a
million threads (a crash). Each bound is checked before anything runs, in one line.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from ctxscope.core.errors import BadInputError

#: The largest integer a run may hold anywhere: SQLite's INTEGER is signed 64-bit.
INT_MAX = 2**63 - 1
# 19 digits in a row: the shortest text of an integer that may not fit. Texts without
# one (nearly every file) are parsed at full speed, with no per-number hook.
_LONG_TEXT = re.compile(r"\d{19}")
_LONG_BYTES = re.compile(rb"\d{19}")


class IntegerTooLarge(ValueError):
    """A JSON integer outside ±:data:`INT_MAX` (the message shows its first digits)."""


def _bounded_int(text: str) -> int:
    digits = text.lstrip("-")
    # Compared before int(): Python refuses to convert texts of more than 4,300 digits.
    if len(digits) > 19 or abs(value := int(text)) > INT_MAX:
        shown = text if len(text) <= 24 else f"{text[:20]}… ({len(digits):,} digits)"
        raise IntegerTooLarge(f"the integer {shown} is out of range (at most 2**63 - 1)")
    return value


def json_loads(text: str | bytes) -> Any:
    """``json.loads``, refusing (:class:`IntegerTooLarge`) any integer that would not fit
    in 64 bits, wherever it is in the document."""
    long = _LONG_BYTES.search(text) if isinstance(text, bytes) else _LONG_TEXT.search(text)
    if long is None:
        return json.loads(text)
    return json.loads(text, parse_int=_bounded_int)


def machine_cores() -> int:
    """Logical CPU cores of this machine."""
    return os.cpu_count() or 1


def check_threads(threads: int | None, where: str = "this machine") -> None:
    """``--threads`` from 1 to the cores of the machine that will run the sweep."""
    if threads is None:
        return
    cores = machine_cores()
    if not 1 <= threads <= cores:
        raise BadInputError(f"--threads {_short(threads)}: use 1 to {cores} ({where} has {cores} CPU core"
                            f"{'s' if cores != 1 else ''})")


def check_seed(seed: int) -> None:
    if not 0 <= seed <= INT_MAX:
        raise BadInputError(f"--seed {_short(seed)}: use a whole number from 0 to 2**63 - 1")


def check_span(span: Any) -> None:
    """An attention span is two token positions, start before end."""
    if span is None:
        return
    if not (isinstance(span, (tuple, list)) and len(span) == 2 and all(type(v) is int for v in span)
            and 0 <= span[0] < span[1] <= INT_MAX):
        shown = list(span) if isinstance(span, tuple) else span  # as it was sent
        raise BadInputError(f"attention.span {str(shown)[:40]}: expected two token positions [start, end), "
                            "start before end")


def check_sweep(cfg: Any) -> None:
    """The bounds of a :class:`~ctxscope.core.spec.SweepConfig` that do not depend on the
    machine (the thread count does: :func:`check_threads` where it runs)."""
    check_seed(cfg.seed)
    if cfg.attention is not None:
        check_span(cfg.attention.span)


def _short(n: int) -> str:
    text = str(n)
    return text if len(text) <= 24 else f"{text[:20]}… ({len(text):,} digits)"
