"""Events yielded by :func:`ctxscope.core.sweep.run_sweep`: frozen plain data, safe to
hand to another thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.quality.records import QualityPoint
from ctxscope.core.results import Point, RunHeader
from ctxscope.core.telemetry import TelemetrySample


@dataclass(frozen=True, slots=True)
class SweepStarted:
    """First event: everything known before the first point (store the run row now)."""

    header: RunHeader


@dataclass(frozen=True, slots=True)
class Progress:
    """About to measure ``mode`` at ``length``; ``done`` of ``total`` points finished."""

    done: int
    total: int
    mode: str
    length: int
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True, slots=True)
class PointResult:
    """A point measured successfully (``point.status == "ok"``)."""

    point: Point


@dataclass(frozen=True, slots=True)
class PointFailed:
    """A point that is data but not a measurement: ``oom``, ``error`` or ``skipped``."""

    point: Point


@dataclass(frozen=True, slots=True)
class AttentionResult:
    """The attention pass at one length: ``capture`` holds CPU numpy maps (``None``
    when ``status`` is ``oom``/``error``); ``entries`` are the run JSON's records."""

    length: int
    status: str
    capture: Any = None
    tokens: tuple[str, ...] | None = None
    entries: tuple[AttentionEntry, ...] = ()
    error: str | None = None


SweepEvent = Union[SweepStarted, Progress, PointResult, PointFailed, AttentionResult, QualityPoint, TelemetrySample]
