import numpy as np
import pytest

from ctxscope.core.errors import BadInputError
from ctxscope.core.lengths import format_size, parse_lengths, parse_size
from ctxscope.core.stats import LatencyStats


@pytest.mark.parametrize(("spec", "expected"), [
    ("128,256,1k,4k", (128, 256, 1024, 4096)),
    ("4k,128,128", (128, 4096)),
    ("128:1k:x2", (128, 256, 512, 1024)),
    ("128:1k", (128, 256, 512, 1024)),
    ("100:400:+100", (100, 200, 300, 400)),
    ("64, 1k:2k:x2 ,32k", (64, 1024, 2048, 32768)),
    ("1m", (1048576,)),
    ("1000:2000:x1.5", (1000, 1500)),
])
def test_parse_lengths(spec: str, expected: tuple[int, ...]) -> None:
    assert parse_lengths(spec) == expected


@pytest.mark.parametrize("spec", ["", ",", "abc", "0", "-5", "1k:128", "128:1k:x1", "128:1k:xq", "1:2:3:4", "12.5k",
                                  "1:10000000:+1", "128:1k:xnan", "128:1k:xinf", "128:1k:x-inf", "1:1m:x1e400",
                                  "99999999999999999999999999m", "1025m", "1:1m:x1.000000001", "1:1m:x1.000001"])
def test_bad_lengths(spec: str) -> None:
    with pytest.raises(BadInputError):
        parse_lengths(spec)


@pytest.mark.timeout(10)
def test_ranges_cost_what_their_answer_costs() -> None:
    """A factor close to 1 once meant ~10¹⁰ multiplications before the count was checked
    (the app's live check froze the window): now the work follows the distinct values."""
    values = parse_lengths("1:1m:x1.001")
    assert len(values) < 10_000 and values[0] == 1 and values[-1] <= 1024**2
    assert list(values) == sorted(set(values))
    # Every value is start·factorᵏ rounded, and none between is skipped at small values.
    assert values[:10] == tuple(range(1, 11))
    assert parse_lengths("1:100:x1.0001") == tuple(range(1, 101))


def test_format_size_roundtrip() -> None:
    for n in (1, 100, 1024, 4096, 32768, 1048576, 1000):
        assert parse_size(format_size(n)) == n


def test_stats_match_numpy() -> None:
    samples = [10.0, 12.0, 11.0, 30.0, 10.5, 11.5]
    s = LatencyStats.from_samples(samples)
    assert s.median == pytest.approx(np.median(samples))
    assert s.p10 == pytest.approx(np.percentile(samples, 10))
    assert s.p90 == pytest.approx(np.percentile(samples, 90))
    assert s.mean == pytest.approx(np.mean(samples))
    assert s.std == pytest.approx(np.std(samples, ddof=1))
    assert s.n == 6 and s.samples == tuple(samples)
    assert s.p10 <= s.median <= s.p90


def test_noisy_flag() -> None:
    assert not LatencyStats.from_samples([10.0, 10.1, 9.9, 10.0]).noisy
    assert LatencyStats.from_samples([10.0, 20.0, 5.0, 15.0]).noisy


def test_stats_reject_bad_samples() -> None:
    with pytest.raises(ValueError):
        LatencyStats.from_samples([])
    with pytest.raises(ValueError):
        LatencyStats.from_samples([1.0, float("nan")])
    single = LatencyStats.from_samples([5.0])
    assert single.std == 0.0 and single.median == 5.0
