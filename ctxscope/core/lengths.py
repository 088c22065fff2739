"""Parse context-length lists such as ``128,256,1k,4k`` or ``128:32k:x2``."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ctxscope.core import units
from ctxscope.core.errors import BadInputError

MAX_POINTS = 10_000
#: The longest context accepted (1024m tokens): far beyond any model, and small enough
#: that every length fits the int64 columns of the history and torch's index types.
MAX_LENGTH = 1 << 30


def parse_size(text: str) -> int:
    """One length: ``512``, ``4k`` (4096) or ``1m`` (1048576) — binary multiples, as
    context lengths are quoted (a "32k context" is 32768 tokens) — at most
    :data:`MAX_LENGTH` (the parsing itself is :func:`ctxscope.core.units.parse_size`)."""
    try:
        value = units.parse_size(text, "length")
    except BadInputError as exc:
        raise BadInputError(f"{exc} (at most {format_size(MAX_LENGTH)})") from None
    if value > MAX_LENGTH:
        raise BadInputError(f"bad length {text.strip()[:40]!r}: at most {format_size(MAX_LENGTH)} tokens")
    return value


def _geometric(start: int, stop: int, factor: float, spec: str) -> list[int]:
    """Distinct rounded values of start·factorᵏ up to ``stop``, in time proportional to
    how many there are: when several powers round to the same integer (a factor close
    to 1 at small values), it jumps straight to the first power that rounds higher, so
    ``1:1m:x1.000000001`` costs what its answer costs instead of 10¹⁰ multiplications."""
    log_f = math.log(factor)
    values: list[int] = []
    k = 0
    while True:
        value = start * factor ** k
        rounded = math.floor(value + 0.5)
        if rounded > stop:
            return values
        if not values or rounded != values[-1]:
            values.append(rounded)
            if len(values) > MAX_POINTS:
                raise BadInputError(f"bad length range {spec!r}: more than {MAX_POINTS} lengths; use a larger factor")
        # The first k whose power reaches rounded + 0.5, i.e. rounds to a larger integer.
        k = max(k + 1, math.ceil(math.log((rounded + 0.5) / start) / log_f))


def _parse_range(spec: str) -> list[int]:
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise BadInputError(f"bad length range {spec!r}: use START:STOP[:STEP], e.g. 128:32k:x2")
    start, stop = parse_size(parts[0]), parse_size(parts[1])
    step = parts[2].strip() if len(parts) == 3 else "x2"
    if stop < start:
        raise BadInputError(f"bad length range {spec!r}: stop is below start")
    if step[:1] in ("x", "*"):
        try:
            factor = float(step[1:])
        except ValueError:
            raise BadInputError(f"bad length step {step!r}: use xF (e.g. x2) or +N (e.g. +256)") from None
        if not math.isfinite(factor) or factor <= 1.0:
            raise BadInputError(f"bad length step {step!r}: the factor must be a finite number above 1")
        return _geometric(start, stop, factor, spec)
    increment = parse_size(step.lstrip("+"))
    if (stop - start) // increment + 1 > MAX_POINTS:  # closed form: never build a huge list
        raise BadInputError(f"bad length range {spec!r}: more than {MAX_POINTS} lengths; use a larger step")
    return list(range(start, stop + 1, increment))


def parse_lengths(spec: str) -> tuple[int, ...]:
    """Parse a length specification into a sorted tuple of distinct token counts.

    Accepts a comma-separated list whose items are sizes (``1k``) or ranges
    (``START:STOP[:xF|:+N]``).

    Raises
    ------
    BadInputError
        On any malformed item, a non-positive length, an empty result or more than
        ``MAX_POINTS`` lengths.
    """
    items = [item for item in spec.split(",") if item.strip()]
    if not items:
        raise BadInputError("empty length list: give lengths such as 128,256,1k or a range 128:4k:x2")
    values: set[int] = set()
    for item in items:
        values.update(_parse_range(item) if ":" in item else [parse_size(item)])
    if len(values) > MAX_POINTS:
        raise BadInputError(f"too many lengths ({len(values)}): at most {MAX_POINTS} per sweep")
    return tuple(sorted(values))


def format_size(value: int) -> str:
    """Inverse of :func:`parse_size` where exact: 4096 → ``4k``, 1000 → ``1000``."""
    if value >= 1024**2 and value % 1024**2 == 0:
        return f"{value // 1024**2}m"
    if value >= 1024 and value % 1024 == 0:
        return f"{value // 1024}k"
    return str(value)


def beyond_positions(limit: int | None, lengths: Iterable[int]) -> str | None:
    """What is wrong with ``lengths`` for a model of ``limit`` positions (``None``: fine):
    the one line a sweep is refused with, before or after its weights load."""
    too_long = sorted(n for n in lengths if limit and n > limit)
    if not too_long:
        return None
    which = f"length {too_long[0]}" if len(too_long) == 1 else f"{len(too_long)} lengths ({too_long[0]} … {too_long[-1]})"
    return (f"{which} exceed{'s' if len(too_long) == 1 else ''} the model's {limit} positions "
            "(use --allow-beyond-max to try anyway)")
