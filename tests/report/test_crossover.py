"""Where one run becomes cheaper than the baseline: found between measured lengths,
placed by log-log interpolation, named in the CLI comparison and the HTML report."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from ctxscope.core.stats import LatencyStats
from ctxscope.report.compare import compare
from ctxscope.report.crossover import crossovers, describe
from ctxscope.report.html import render_html
from tests.report.test_reports import make_run


def _latency(run, medians: dict[int, float], mode: str = "prefill"):
    return replace(run, points=tuple(replace(p, latency_ms=LatencyStats.from_samples([medians[p.length]] * 3))
                                     if p.mode == mode and p.length in medians else p for p in run.points))


def test_a_hybrid_becomes_faster_than_a_transformer_between_two_lengths() -> None:
    lengths = (1024, 2048, 4096, 8192)
    # The transformer doubles then quadruples; the "hybrid" starts slower and grows linearly.
    transformer = _latency(make_run("t", source="transformer", lengths=lengths), {1024: 10, 2048: 22, 4096: 60, 8192: 200})
    hybrid = _latency(make_run("h", source="hybrid", lengths=lengths), {1024: 20, 2048: 40, 4096: 80, 8192: 160})
    cmp = compare([transformer, hybrid])
    found = [c for c in crossovers(cmp) if c.measure == "latency" and c.mode == "prefill"]
    assert len(found) == 1
    c = found[0]
    assert (c.below, c.above, c.run, c.cheaper_beyond) == (4096, 8192, 1, True)
    # ratio 80/60 at 4096 and 160/200 at 8192: log-ratio reaches 0 at t = a / (a - b)
    a, b = math.log(80 / 60), math.log(160 / 200)
    assert c.length == pytest.approx(4096 * 2 ** (a / (a - b)))
    text = describe(c, cmp)
    assert "B · hybrid is faster than the baseline A · transformer" in text and "between the measured 4,096 and 8,192" in text
    assert text in render_html([transformer, hybrid])


def test_curves_that_never_cross_give_nothing_and_a_slower_turn_is_named() -> None:
    lengths = (1024, 2048, 4096)
    base = _latency(make_run("a", source="a", lengths=lengths), {1024: 10, 2048: 20, 4096: 40})
    always_slower = _latency(make_run("b", source="b", lengths=lengths), {1024: 11, 2048: 21, 4096: 41})
    assert [c for c in crossovers(compare([base, always_slower])) if c.measure == "latency"] == []
    turns_slower = _latency(make_run("c", source="c", lengths=lengths), {1024: 5, 2048: 30, 4096: 60})
    (c,) = [c for c in crossovers(compare([base, turns_slower])) if c.measure == "latency" and c.mode == "prefill"]
    assert not c.cheaper_beyond and "is slower than the baseline" in describe(c, compare([base, turns_slower]))
    equal = _latency(make_run("d", source="d", lengths=lengths), {1024: 10, 2048: 20, 4096: 40})
    assert [c for c in crossovers(compare([base, equal])) if c.measure == "latency"] == []  # equal is no crossing
