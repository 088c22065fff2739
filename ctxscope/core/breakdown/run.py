"""The breakdown pass as the sweep calls it: failures (out of memory included) are data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctxscope.core.blocks import BreakdownBlock
from ctxscope.core.measure.memory import classify_failure, release

if TYPE_CHECKING:
    from ctxscope.core.measure.measurer import Measurer


def breakdown_of(measurer: Measurer, mode: str, length: int, timed_median_ms: float) -> BreakdownBlock:
    """The point's breakdown, or ``{"error": ...}`` when the profiled pass failed; the
    timed figures of the point are kept either way."""
    from ctxscope.core.breakdown.profiled import profile_point

    failure: BreakdownBlock | None = None
    try:
        block = profile_point(measurer, mode, length, timed_median_ms)
    except Exception as exc:  # noqa: BLE001 (a failed profile must not lose the timed point)
        _, message = classify_failure(exc)
        failure = {"error": message}
    # Outside the except block, so the failed pass's tensors are really freed.
    release(measurer.devices or measurer.device, collect=failure is not None)
    return failure if failure is not None else block
