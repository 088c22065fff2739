"""Latency statistics that keep their raw samples (after torch.utils.benchmark's Measurement)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Relative IQR (IQR / median) at or above which a measurement is flagged noisy.
NOISY_REL_IQR = 0.10
_SAFE_LOW, _SAFE_HIGH = 2.0**-400, 2.0**400


def _lerp(a: float, b: float, t: float) -> float:
    # numpy's formula (exact at both ends, monotone): a run file's statistics come out
    # the same whether they were derived at sweep time or again on loading.
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method) of sorted values."""
    pos = q / 100 * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return _lerp(ordered[lo], ordered[hi], pos - lo)


def _moments(scaled: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of values in [-1, 1]; ``fsum`` is
    exactly rounded, so nothing cancels or overflows."""
    n = len(scaled)
    mean = math.fsum(scaled) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((x - mean) * (x - mean) for x in scaled) / (n - 1))


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Summary of repeated timings of one model call, in milliseconds.

    ``samples`` are the raw per-call times in the order measured; every other field is
    derived from them by :meth:`from_samples`, so a loaded file can be re-derived.
    """

    median: float
    p10: float
    p90: float
    mean: float
    std: float
    iqr: float
    n: int
    samples: tuple[float, ...]

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        """Derive the statistics from raw samples (ms). Raises ``ValueError`` when empty
        or when a sample is not a finite number.

        Plain Python rather than numpy: a run file holds one small sample list per
        point, and numpy's per-call overhead made loading 200k points take minutes.
        Values are scaled by a power of two (exact) into [-1, 1] first, so extreme
        samples (1e308, or 1e-300 beside 1e300) neither overflow nor warn.
        """
        if len(samples_ms) == 0:
            raise ValueError("no latency samples")
        try:
            values = tuple(map(float, samples_ms))
        except (OverflowError, TypeError, ValueError):  # e.g. a 400-digit integer in a file
            raise ValueError("latency samples must be finite numbers") from None
        if not all(map(math.isfinite, values)):
            raise ValueError("latency samples must be finite")
        ordered = sorted(values)
        largest = max(abs(ordered[0]), abs(ordered[-1]))
        # Far from both ends of the float range nothing can overflow: no scaling, so
        # ordinary samples give exactly the figures an unscaled computation gives.
        shift = 0 if _SAFE_LOW < largest < _SAFE_HIGH or largest == 0 else math.frexp(largest)[1]
        scaled = [math.ldexp(x, -shift) for x in ordered] if shift else ordered
        q10, q25, q50, q75, q90 = (_percentile(scaled, q) for q in (10, 25, 50, 75, 90))
        mean, std = _moments(scaled)
        if not shift:
            return cls(median=q50, p10=q10, p90=q90, mean=mean, std=std, iqr=q75 - q25, n=len(values),
                       samples=values)
        return cls(
            median=math.ldexp(q50, shift),
            p10=math.ldexp(q10, shift),
            p90=math.ldexp(q90, shift),
            mean=math.ldexp(mean, shift),
            std=_scale_up(std, shift),
            iqr=_scale_up(q75 - q25, shift),
            n=len(values),
            samples=values,
        )

    @property
    def rel_iqr(self) -> float:
        """IQR / median: the spread the repetition policy drives below its target."""
        return _relative(self.iqr, self.median)

    @property
    def noisy(self) -> bool:
        """True when the spread is too wide to trust small differences (≥ 10%)."""
        return self.rel_iqr >= NOISY_REL_IQR


def _relative(iqr: float, median: float) -> float:
    return iqr / median if median > 0 else math.inf


def rel_iqr(samples: Sequence[float]) -> float:
    """IQR / median of raw samples, as :attr:`LatencyStats.rel_iqr` would give it (the
    repetition policy asks after every sample, before the statistics exist)."""
    ordered = sorted(samples)
    return _relative(_percentile(ordered, 75) - _percentile(ordered, 25), _percentile(ordered, 50))


def _scale_up(value: float, shift: int) -> float:
    # A spread wider than the largest float (samples near ±1.8e308) is infinite, said
    # without an OverflowError.
    try:
        return math.ldexp(value, shift)
    except OverflowError:
        return math.inf
