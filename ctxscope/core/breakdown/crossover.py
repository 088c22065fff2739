"""The length where attention time equals the linear layers' time, from measured points.

Between two measured lengths where the ratio attention ÷ (projections + MLP + recurrent
mixers) passes through 1, the crossing is placed by interpolating log(ratio) linearly in
log(L), as the comparison's crossovers are (``report.crossover``): the terms are close
to power laws in L. No torch here: reports use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ctxscope.core.blocks import BreakdownBlock, BreakdownCrossover
from ctxscope.core.breakdown import LINEAR
from ctxscope.core.results import Point, RunResult


@dataclass(frozen=True, slots=True)
class Crossing:
    """Attention overtakes the linear layers at ``length`` (interpolated between the
    measured ``below`` and ``above``); ``predicted`` is the analytic figure (or ``None``)."""

    mode: str
    length: float
    below: int
    above: int
    predicted: float | None = None

    @property
    def ratio(self) -> float | None:
        """Measured ÷ predicted."""
        return self.length / self.predicted if self.predicted else None


def ratio_of(block: BreakdownBlock) -> float | None:
    """Attention time ÷ the linear layers' time of one point (``None``: either is 0)."""
    parts = block.get("components_ms") or {}
    linear = sum(parts.get(k, 0.0) for k in LINEAR)
    attention = parts.get("attention", 0.0)
    return attention / linear if attention > 0 and linear > 0 else None


def breakdown_points(run: RunResult, mode: str) -> list[tuple[Point, BreakdownBlock]]:
    """The points of ``mode`` with a breakdown (no error), by length."""
    out = [(p, p.breakdown) for p in run.ok_points(mode) if p.breakdown and not p.breakdown.get("error")]
    return sorted(out, key=lambda pb: pb[0].length)


def measured_crossing(lengths: Sequence[int], ratios: Sequence[float | None]) -> tuple[float, int, int] | None:
    """The first crossing of ``ratios`` (by length) from below 1 to 1 or above."""
    found = crossings(lengths, ratios)
    return next(((x, lo, hi) for x, lo, hi, up in found if up), None)


def crossings(lengths: Sequence[int], ratios: Sequence[float | None]) -> list[tuple[float, int, int, bool]]:
    """Every crossing of 1 by ``ratios`` (by length): (L, below, above, upward). More
    than one means the measurements are noisier than the trend."""
    series = [(n, r) for n, r in zip(lengths, ratios) if r is not None and r > 0]
    out = []
    for (l0, r0), (l1, r1) in zip(series, series[1:]):
        a, b = math.log(r0), math.log(r1)
        if (a < 0 <= b) or (a >= 0 > b):
            t = a / (a - b)
            out.append((math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0))), l0, l1, a < 0))
    return out


def predicted(run: RunResult, mode: str) -> float | None:
    """The analytic crossover the run's header recorded for ``mode``."""
    block: BreakdownCrossover | None = (run.header.analytic or {}).get("breakdown")
    if not block:
        return None
    return block.get("decode_depth") if mode == "decode" else block.get("prefill_length")


def crossing(run: RunResult, mode: str) -> Crossing | None:
    """Where attention overtook the linear layers among ``mode``'s measured points."""
    pairs = breakdown_points(run, mode)
    found = measured_crossing([p.length for p, _ in pairs], [ratio_of(b) for _, b in pairs])
    if found is None:
        return None
    return Crossing(mode=mode, length=found[0], below=found[1], above=found[2], predicted=predicted(run, mode))


def describe(run: RunResult, mode: str) -> str:
    """One line: the measured crossover beside the analytic one, with their ratio."""
    pairs = breakdown_points(run, mode)
    guess = predicted(run, mode)
    where = "depth" if mode == "decode" else "L"
    said = f"analytic {where} ≈ {guess:,.0f}" if guess else "analytic: never"
    if not pairs:
        return f"{mode}: no breakdown measured ({said})"
    c = crossing(run, mode)
    if c is not None:
        ratio = f", measured ÷ analytic = {c.ratio:.2f}" if c.ratio else ""
        every = crossings([p.length for p, _ in pairs], [ratio_of(b) for _, b in pairs])
        back = [f"{lo:,}–{hi:,}" for _, lo, hi, up in every if not up and lo >= c.above]
        noisy = f" — but back below between {', '.join(back)}: noisier than the trend" if back else ""
        return (f"{mode}: attention = linear layers at {where} ≈ {c.length:,.0f} (measured, between {c.below:,} "
                f"and {c.above:,}){noisy}; {said}{ratio}")
    ratios = [r for _, b in pairs if (r := ratio_of(b)) is not None]
    lo, hi = pairs[0][0].length, pairs[-1][0].length
    if not ratios:
        return f"{mode}: no attention time measured from {lo:,} to {hi:,} ({said})"
    side = "below" if max(ratios) < 1 else "above"
    return (f"{mode}: attention stays {side} the linear layers from {lo:,} to {hi:,} "
            f"(attention ÷ linear {min(ratios):.2f}–{max(ratios):.2f}); {said}")
