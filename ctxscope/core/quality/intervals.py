"""The intervals the quality verdicts are decided by (no torch, no numpy, no scipy):
Student t intervals of a paired mean, the equivalence test (TOST) on them, Wilson
score intervals of a retrieval rate, and how many more windows or trials would
resolve a question the data leave open."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided Student t quantiles by degrees of freedom: 95 % (0.975 one-sided) and 90 %
# (0.95 one-sided, what a two one-sided tests equivalence check at α = 5 % uses). Few
# windows: the normal 1.96 would understate the interval badly at 3 degrees of freedom.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 22: 2.074, 24: 2.064, 26: 2.056, 28: 2.048, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
_T90 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
        11: 1.796, 12: 1.782, 13: 1.771, 14: 1.761, 15: 1.753, 16: 1.746, 17: 1.740, 18: 1.734, 19: 1.729,
        20: 1.725, 22: 1.717, 24: 1.711, 26: 1.706, 28: 1.701, 30: 1.697, 40: 1.684, 60: 1.671, 120: 1.658}
Z95 = 1.959964  # the normal quantile of the Wilson interval


def _t(table: dict[int, float], dof: int, normal: float) -> float:
    if dof < 1:
        return math.inf
    # the next smaller tabulated value's: a slightly wider interval, never narrower
    return table[max(k for k in table if k <= dof)] if dof <= 120 else normal


def t95(dof: int) -> float:
    """The 95 % two-sided t quantile for ``dof`` degrees of freedom."""
    return _t(_T95, dof, 1.960)


def t90(dof: int) -> float:
    """The 90 % two-sided t quantile (each one-sided test of TOST at 5 %)."""
    return _t(_T90, dof, 1.645)


@dataclass(frozen=True, slots=True)
class Paired:
    """A mean of paired differences (one per window) with its 95 % and 90 % Student t
    intervals; the intervals are ``None`` with fewer than two windows."""

    mean: float
    sd: float | None
    n: int

    @staticmethod
    def of(diffs: Sequence[float]) -> Paired:
        n = len(diffs)
        mean = math.fsum(diffs) / n
        sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else None
        return Paired(mean, sd, n)

    def _half(self, q: float) -> float | None:
        return None if self.sd is None else q * self.sd / math.sqrt(self.n)

    @property
    def ci95(self) -> tuple[float, float] | None:
        half = self._half(t95(self.n - 1))
        return None if half is None else (self.mean - half, self.mean + half)

    @property
    def ci90(self) -> tuple[float, float] | None:
        half = self._half(t90(self.n - 1))
        return None if half is None else (self.mean - half, self.mean + half)

    def above(self, bound: float) -> bool:
        """The 95 % interval lies wholly above ``bound``."""
        ci = self.ci95
        return ci is not None and ci[0] > bound

    def below(self, bound: float) -> bool:
        ci = self.ci95
        return ci is not None and ci[1] < bound

    def equivalent(self, epsilon: float) -> bool:
        """TOST at α = 5 %: the 90 % interval lies inside (−ε, +ε)."""
        ci = self.ci90
        return ci is not None and -epsilon < ci[0] and ci[1] < epsilon

    def windows_to_resolve(self, epsilon: float, limit: int = 4096) -> int | None:
        """Windows that would decide this mean against ±ε if they varied as these do:
        inside ±ε (|mean| < ε) or beyond it (|mean| > ε). ``None``: no spread to scale
        from, or more than ``limit``."""
        if self.sd is None or self.sd == 0:
            return None
        gap = abs(abs(self.mean) - epsilon)
        if gap == 0:
            return None
        quantile = t90 if abs(self.mean) < epsilon else t95
        for n in range(2, limit + 1):
            if quantile(n - 1) * self.sd / math.sqrt(n) < gap:
                return n
        return None


@dataclass(frozen=True, slots=True)
class Wilson:
    """A binomial rate ``found / n`` with its 95 % Wilson score interval (sound at
    0/n and n/n and at the few trials a retrieval cell has, where the normal interval
    collapses to a point)."""

    found: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.found / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.n == 0:
            return None
        return wilson(self.found, self.n)

    def verdict(self, threshold: float) -> str:
        """``"above"`` (the interval's low end ≥ threshold), ``"below"`` (its high end
        < threshold), ``"unresolved"`` or ``"not run"``."""
        ci = self.interval
        if ci is None:
            return "not run"
        if ci[0] >= threshold:
            return "above"
        if ci[1] < threshold:
            return "below"
        return "unresolved"

    def trials_to_resolve(self, threshold: float, limit: int = 10_000) -> int | None:
        """Trials that would decide the rate against ``threshold`` if it stayed what it
        is now (``None``: it sits on the threshold, or more than ``limit``)."""
        rate = self.rate
        if rate is None or rate == threshold:
            return None
        for n in range(max(self.n, 1), limit + 1):
            low, high = wilson(rate * n, n)
            if (rate > threshold and low >= threshold) or (rate < threshold and high < threshold):
                return n
        return None


def wilson(found: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``found`` successes in ``n`` trials."""
    p = found / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
