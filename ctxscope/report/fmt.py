"""Human-readable units (they live in :mod:`ctxscope.core.units`; reports import them here)."""

from ctxscope.core.units import fmt_bytes, fmt_count, fmt_layer_mix, fmt_ms, fmt_rate, fmt_seconds, plural

__all__ = ["fmt_bytes", "fmt_count", "fmt_layer_mix", "fmt_ms", "fmt_rate", "fmt_seconds", "plural"]
