"""Human-readable units: one formatter per quantity, used by every front end (CLI, app,
reports) and by the core's own messages."""

from __future__ import annotations

from collections.abc import Sequence

import re

from ctxscope.core.errors import BadInputError

#: Bytes in a GiB: plots scale memory axes by it (text uses :func:`fmt_bytes`).
GIB = 1024**3

# Binary multiples for both: a "32k context" is 32768 tokens, "20G" of memory 20 GiB.
_MULTIPLES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_QUANTITY = re.compile(r"^\s*(\d{1,15}(?:\.\d{1,9})?)\s*([kKmMgGtT]?)(i?[bB])?\s*$")


def parse_size(text: str, what: str = "length") -> int:
    """The one parser of sizes: ``512``, ``4k`` (4096), ``1m``; for ``what="memory"``
    also ``20GiB``, ``1.5G``, ``512MiB``, ``800B``. Binary multiples throughout.

    A ``length`` is a whole number of tokens with at most a k or m suffix; a memory size
    may have a fraction. Raises :class:`BadInputError` with one line naming ``what``.
    """
    shown = text.strip() if len(text.strip()) <= 40 else text.strip()[:37] + "…"
    match = _QUANTITY.match(text)
    tokens = what == "length"
    number, multiple, byte_suffix = match.groups() if match else ("", "", None)
    if match is None or (tokens and (byte_suffix or "." in number or multiple.lower() in ("g", "t"))):
        example = "512, 4k or 1m" if tokens else "20GiB, 512MiB or 1.5G"
        raise BadInputError(f"bad {what} {shown!r}: use {'an integer' if tokens else 'a size'} such as {example}")
    value = float(number) * _MULTIPLES[multiple.lower()]
    if value < 1:
        raise BadInputError(f"bad {what} {shown!r}: must be positive")
    return int(value)


def fmt_bytes(value: float | None) -> str:
    """1536 → ``1.5 KiB``; ``None`` → ``-`` (a float, e.g. read from JSON, the same way)."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    size = float(abs(value))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{sign}{size:.0f} {unit}" if unit == "B" else f"{sign}{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def fmt_mib(value: float | None) -> str:
    """Bytes in MiB with one decimal whatever the size (1073741824 → ``1,024.0 MiB``): where
    a figure is compared with a budget, 1.0 GiB against 1.0 GiB decides nothing."""
    return "-" if value is None else f"{value / 2**20:,.1f} MiB"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    size = abs(value)  # a negative difference reads in the same unit as a positive one
    return f"{value:.3f} ms" if size < 10 else f"{value:.1f} ms" if size < 1000 else f"{value / 1000:.2f} s"


def fmt_count(value: int) -> str:
    """1_235_814_400 → ``1.24 B``."""
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.2f} {unit}"
    return str(value)


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "?"
    value = int(round(value))
    return f"{value // 3600}h{value % 3600 // 60:02d}m" if value >= 3600 else f"{value // 60}m{value % 60:02d}s"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``1,024 points`` (``words``: an irregular plural)."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


def fmt_rate(value: float | None, unit: str = "FLOP/s") -> str:
    """1.2e15 → ``1,200.0 TFLOP/s``; small rates in G."""
    if value is None:
        return "-"
    return f"{value / 1e12:,.1f} T{unit}" if value >= 1e12 else f"{value / 1e9:,.1f} G{unit}"


def fmt_layer_mix(kinds: Sequence[str], *, short: bool = False) -> str:
    """A decoder's layer kinds in words, in order of first appearance: '36 linear attention
    (gated delta rule) + 12 full attention' (``short``: '36 linear + 12 attn'); empty for
    a plain transformer (every layer full attention) or when the kinds are unknown."""
    from ctxscope.core.results import LAYER_KIND_LABELS, LAYER_KIND_SHORT

    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    if not counts or set(counts) == {"full_attention"}:
        return ""
    names = LAYER_KIND_SHORT if short else LAYER_KIND_LABELS
    return " + ".join(f"{n} {names.get(k, k)}" for k, n in counts.items())
