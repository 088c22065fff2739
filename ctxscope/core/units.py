"""Human-readable units: one formatter per quantity, used by every front end (CLI, app,
reports) and by the core's own messages."""

from __future__ import annotations


def fmt_bytes(value: int | None) -> str:
    """1536 → ``1.5 KiB``; ``None`` → ``-``."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    size = float(abs(value))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{sign}{size:.0f} {unit}" if unit == "B" else f"{sign}{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


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


def fmt_rate(value: float | None, unit: str = "FLOP/s") -> str:
    """1.2e15 → ``1,200.0 TFLOP/s``; small rates in G."""
    if value is None:
        return "-"
    return f"{value / 1e12:,.1f} T{unit}" if value >= 1e12 else f"{value / 1e9:,.1f} G{unit}"
