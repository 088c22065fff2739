"""Latency statistics that keep their raw samples (after torch.utils.benchmark's Measurement)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Relative IQR (IQR / median) at or above which a measurement is flagged noisy.
NOISY_REL_IQR = 0.10


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
    def from_samples(cls, samples_ms: list[float] | tuple[float, ...]) -> LatencyStats:
        """Derive the statistics from raw samples (ms). Raises ``ValueError`` when empty."""
        if len(samples_ms) == 0:
            raise ValueError("no latency samples")
        arr = np.asarray(samples_ms, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("latency samples must be finite")
        q10, q25, q50, q75, q90 = np.percentile(arr, [10, 25, 50, 75, 90])
        return cls(
            median=float(q50),
            p10=float(q10),
            p90=float(q90),
            mean=float(arr.mean()),
            std=float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            iqr=float(q75 - q25),
            n=int(arr.size),
            samples=tuple(float(x) for x in arr),
        )

    @property
    def rel_iqr(self) -> float:
        """IQR / median: the spread the repetition policy drives below its target."""
        return self.iqr / self.median if self.median > 0 else math.inf

    @property
    def noisy(self) -> bool:
        """True when the spread is too wide to trust small differences (≥ 10%)."""
        return self.rel_iqr >= NOISY_REL_IQR
