"""Where one run becomes cheaper than the baseline as the context grows.

A transformer, a hybrid and a state-space model of one size cost about the same at short
contexts; the point of the hybrid and state-space designs is that their cost grows more
slowly. The length where the curves cross is the answer a comparison owes: it is found
between two measured lengths where the ratio to the baseline passes through 1, and placed
by interpolating log(ratio) linearly in log(L) — the curves are close to power laws in
L — between them. Only measured medians (latency) and peaks (memory) are used: no fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ctxscope.report.compare import Comparison

MEASURES = ("latency", "memory")


@dataclass(frozen=True, slots=True)
class Crossover:
    """Run ``run`` costs less than the baseline beyond ``length`` (``cheaper_beyond``)
    or more (not ``cheaper_beyond``), on ``measure`` in ``mode``."""

    mode: str
    measure: str  # "latency" (median) or "memory" (peak)
    run: int
    length: float  # interpolated
    below: int  # the measured lengths on either side
    above: int
    cheaper_beyond: bool


def crossovers(cmp: Comparison) -> list[Crossover]:
    """Every crossing of a run's ratio to the baseline through 1, per mode and measure."""
    out = []
    for mode in cmp.modes:
        rows = cmp.rows_of(mode)
        for i in range(len(cmp.runs)):
            if i == cmp.baseline:
                continue
            for measure in MEASURES:
                series = [(row.length, r) for row in rows
                          if (r := (row.cells[i].latency_ratio if measure == "latency" else row.cells[i].memory_ratio))
                          is not None and r > 0]
                for (l0, r0), (l1, r1) in zip(series, series[1:]):
                    a, b = math.log(r0), math.log(r1)
                    if not ((a > 0 >= b) or (a < 0 <= b)):  # still on one side (or equal from l0 on)
                        continue
                    t = a / (a - b)  # log(ratio) reaches 0 this far between log(l0) and log(l1)
                    length = math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0)))
                    out.append(Crossover(mode=mode, measure=measure, run=i, length=length, below=l0, above=l1,
                                         cheaper_beyond=a > 0))
    return out


def describe(c: Crossover, cmp: Comparison) -> str:
    """'decode latency: from L ≈ 3,100 (between 2,048 and 4,096) B · qwen3_next is cheaper
    than the baseline A · llama'."""
    def name(i: int) -> str:
        return f"{chr(65 + i) if i < 26 else i + 1} · {cmp.labels[i]}"

    what = "faster" if c.measure == "latency" else "smaller"
    if not c.cheaper_beyond:
        what = "slower" if c.measure == "latency" else "larger"
    figure = "median latency" if c.measure == "latency" else "peak memory"
    return (f"{c.mode} {figure}: from L ≈ {c.length:,.0f} (between the measured {c.below:,} and {c.above:,}) "
            f"{name(c.run)} is {what} than the baseline {name(cmp.baseline)}")
