"""Verdicts decided by intervals, not point means: every misleading line issue 24 found by
driving ``effective()`` and the knee with synthetic records is a case here, and each of
them printed the misleading line before the verdicts were made statistical statements.

Loss: *falling* only when a doubling's paired saving has its 95 % interval above ε,
*flat* only when the 90 % interval of every paired difference from C on lies inside ±ε
(two one-sided tests at 5 %), *rising* by name, else *not resolved with N windows*.
Retrieval: above / below the threshold by the 95 % Wilson interval of the rate."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from ctxscope.core.quality.effective import effective
from ctxscope.core.quality.intervals import Paired, Wilson, wilson
from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityResult
from ctxscope.core.results import MemoryStats, Point, RunResult
from ctxscope.core.stats import LatencyStats
from ctxscope.report.tradeoff import tradeoff
from tests.core.test_quality_records import SETTINGS, _run

WINDOWS = (-0.3, -0.1, 0.1, 0.3)  # windows differ from each other far more than across contexts


def _points(means: dict[int, float], noise: dict[int, tuple[float, ...]] | None = None) -> list[LossPoint]:
    noise = noise or {}
    return [LossPoint(c, "ok", window_nll=tuple(m + w + e for w, e in zip(WINDOWS, noise.get(c, (0.0,) * 4))))
            for c, m in means.items()]


def _line(loss: list[LossPoint] | None = None, needle: list[NeedleTrial] | None = None) -> str:
    return effective(loss or [], needle or [], claimed=None, fits=None, threshold=0.9, epsilon=0.01).line()


def _trials(length: int, found: int, n: int, status: str = "ok") -> list[NeedleTrial]:
    return [NeedleTrial("grid", length, 50.0, s, status, key="12345", found=(s < found) if status == "ok" else None,
                        key_logprob=-1.0 if status == "ok" else None) for s in range(n)]


# -- loss ------------------------------------------------------------------------------

def test_a_saving_whose_interval_spans_four_epsilons_is_not_flat() -> None:
    # 1024 → 2048 saves 0.0087, paired 95 % interval about (−0.030, +0.047): the run's
    # line said "loss flat (< 0.01 nats/doubling) from 1,024".
    loss = _points({256: 3.40, 512: 3.30, 1024: 3.25, 2048: 3.25},
                   {2048: (0.020, 0.000, -0.020, -0.0348)})
    line = _line(loss)
    assert "flat" not in line
    assert "not resolved with 4 windows" in line and "1,024 → 2,048" in line
    assert "windows (--quality-windows) would resolve it" in line


def test_a_wide_interval_is_not_still_falling() -> None:
    # The app's line said "loss still falling ≥ 0.01 nats/doubling" while the paired
    # interval was (−0.0508 – +0.1107).
    loss = _points({256: 3.30, 512: 3.30}, {512: (0.0301, -0.0099, -0.0499, -0.0899)})
    line = _line(loss)
    assert "still falling" not in line and "not resolved with 4 windows" in line


def test_a_rising_loss_is_named_rising() -> None:
    loss = _points({256: 3.0, 512: 3.1, 1024: 3.2, 2048: 3.3},
                   {512: (0.001, -0.001, 0.0, 0.0005), 1024: (0.0, 0.002, -0.001, 0.0), 2048: (0.001, 0.0, 0.0, -0.002)})
    line = _line(loss)
    assert "rising" in line and "flat" not in line


def test_a_curve_that_never_falls_is_flat_from_the_shortest_measured_with_the_caveat() -> None:
    line = _line(_points({256: 3.0, 512: 3.0, 1024: 3.0, 2048: 3.0}))
    assert "loss flat from 256 (the shortest measured" in line and "to 2,048" in line


def test_pure_noise_is_not_still_falling() -> None:
    r = random.Random(18)  # a draw whose last step's mean drop is ≥ ε: the old line said "still falling"
    loss = [LossPoint(c, "ok", window_nll=tuple(3.0 + w + r.uniform(-0.02, 0.02) for w in WINDOWS))
            for c in (256, 512, 1024, 2048, 4096)]
    line = _line(loss)
    assert "still falling" not in line and "flat" not in line and "not resolved with 4 windows" in line


def test_a_steady_slope_below_epsilon_that_adds_up_is_not_flat() -> None:
    # 0.009 per doubling, 0.027 from 256 to 2,048: each doubling below ε, the sum above.
    loss = _points({256: 3.300, 512: 3.291, 1024: 3.282, 2048: 3.273},
                   {c: (0.0001, -0.0001, 0.0002, -0.0002) for c in (512, 1024, 2048)})
    line = _line(loss)
    assert "flat" not in line and "falling slowly" in line and "256 → 2,048" in line


def test_falling_then_flat_and_a_failed_context_in_the_range() -> None:
    loss = _points({256: 3.40, 512: 3.30, 1024: 3.25, 2048: 3.2502, 4096: 3.2501},
                   {c: (0.001, -0.001, 0.0005, -0.0005) for c in (2048, 4096)})
    assert "loss falls until 1,024, flat from 1,024 to 4,096" in _line(loss)
    gap = loss[:3] + [LossPoint(2048, "oom", "out of memory")] + loss[4:]
    assert "2,048 not measured (oom)" in _line(gap)
    # Falling by more than ε at the longest: still falling, with the interval.
    falling = _points({256: 3.4, 512: 3.3, 1024: 3.2}, {1024: (0.001, -0.001, 0.002, -0.002)})
    assert "loss still falling at 1,024: 512 → 1,024 saves +0.1000" in _line(falling)


def test_one_window_has_no_interval_and_decides_nothing() -> None:
    loss = [LossPoint(c, "ok", window_nll=(v,)) for c, v in ((256, 3.4), (512, 3.0), (1024, 3.0))]
    line = _line(loss)
    assert "not resolved with 1 window" in line and "flat" not in line and "falling" not in line


# -- retrieval ----------------------------------------------------------------------

def test_retrieval_failing_only_at_the_shortest_is_not_below_at_every_length() -> None:
    trials = _trials(256, 0, 40) + [t for n in (512, 1024, 2048, 4096) for t in _trials(n, 40, 40)]
    line = _line(needle=trials)
    assert "every length" not in line
    assert "below 90% at 256" in line and "≥ 90% at 512 – 4,096" in line


def test_a_length_whose_trials_all_failed_breaks_the_chain() -> None:
    trials = _trials(256, 40, 40) + _trials(512, 0, 40, status="oom") + _trials(1024, 40, 40)
    line = _line(needle=trials)
    assert "up to 1,024" not in line
    assert "retrieval ≥ 90% up to 256" in line and "512 not measured (40 trials: oom)" in line


def test_retrieval_thresholds_use_the_wilson_interval() -> None:
    # 15/15 does not show ≥ 90 % (Wilson 95 % low end 79.6 %); 40/40 does (91.2 %).
    line = _line(needle=_trials(512, 15, 15) + _trials(1024, 15, 15))
    assert "retrieval ≥ 90%" not in line and "not resolved" in line and "35 trials" in line
    assert "retrieval ≥ 90% up to 1,024 (the longest measured)" in _line(
        needle=_trials(512, 40, 40) + _trials(1024, 40, 40))
    assert "below 90% at 512" in _line(needle=_trials(512, 5, 15))


def test_wilson_and_paired_intervals_against_reference_values() -> None:
    # Reference values: statsmodels' proportion_confint(method="wilson") and Student t.
    assert wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson(15, 15) == pytest.approx((0.79612, 1.0), abs=1e-5)
    assert wilson(7, 20) == pytest.approx((0.18119, 0.56714), abs=1e-5)
    assert Wilson(15, 15).verdict(0.9) == "unresolved" and Wilson(40, 40).verdict(0.9) == "above"
    assert Wilson(15, 15).trials_to_resolve(0.9) == 35
    p = Paired.of([0.1, 0.2, 0.3, 0.4])
    assert p.ci95 == pytest.approx((0.25 - 3.182 * 0.129099 / 2, 0.25 + 3.182 * 0.129099 / 2), abs=1e-5)
    assert p.ci90 == pytest.approx((0.25 - 2.353 * 0.129099 / 2, 0.25 + 2.353 * 0.129099 / 2), abs=1e-5)
    assert Paired.of([0.001, -0.001, 0.002, 0.0]).equivalent(0.01) and not p.equivalent(0.01) and p.above(0.01)


# -- the knee -----------------------------------------------------------------------

LENGTHS = (256, 512, 1024, 2048, 4096)


def _cost_run(loss: tuple[LossPoint, ...], needle: tuple[NeedleTrial, ...] = (),
              samples: dict[int, list[float]] | None = None) -> RunResult:
    base = _run()
    samples = samples or {n: [n / 10, n / 10 * 1.01, n / 10 * 0.99] for n in LENGTHS}
    points = tuple(Point("prefill", n, 1, "ok", latency_ms=LatencyStats.from_samples(samples[n]),
                         memory=MemoryStats(weights_bytes=10, kv_cache_bytes=n * 100, activation_bytes=n))
                   for n in LENGTHS)
    settings = replace(base.header.settings, lengths=LENGTHS, quality=SETTINGS)
    return replace(base, header=replace(base.header, settings=settings), points=points,
                   quality=QualityResult(loss=loss, needle=needle))


def test_no_knee_when_the_loss_benefit_is_not_significant() -> None:
    # Means drift down a little (0.01 per length) but the windows move ±0.05 in a pattern
    # that rotates from length to length: no saving stands out from its paired interval.
    pattern = (0.05, -0.05, 0.03, -0.03, 0.0)
    loss = tuple(LossPoint(n, "ok", window_nll=tuple(3.0 - 0.01 * i + w + pattern[(j + i) % 5]
                                                     for j, w in enumerate(WINDOWS)))
                 for i, n in enumerate(LENGTHS))
    text = tradeoff(_cost_run(loss)).knee_text()
    assert "no knee: the loss benefit is not significant" in text


def test_no_retrieval_knee_at_the_ceiling() -> None:
    needle = tuple(t for n in LENGTHS for t in _trials(n, 15, 15))
    text = tradeoff(_cost_run((), needle)).knee_text()
    assert "no knee: the retrieval benefit is not significant" in text


def test_the_knee_weighs_the_cost_with_its_spread() -> None:
    loss = tuple(_points({256: 3.40, 512: 3.30, 1024: 3.25, 2048: 3.249, 4096: 3.248},
                         {n: (0.001, -0.001, 0.0, 0.0) for n in LENGTHS}))
    result = tradeoff(_cost_run(loss))
    assert result.knee == 1024
    assert "knee at 1,024 tokens" in result.knee_text() and "p10–p90" in result.knee_text()
    # A cost that does not grow beyond its own spread decides no knee.
    flat = {n: [80.0 + i, 120.0 + i, 100.0 + i] for i, n in enumerate(LENGTHS)}
    text = tradeoff(_cost_run(loss, samples=flat)).knee_text()
    assert "no knee: the prefill latency does not grow beyond its spread" in text
