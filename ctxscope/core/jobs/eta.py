"""How long the rest of a sweep will take, from what its points have taken so far.

Weighting every pass by its length alone (the first version) made the first ETA 3-4x
too long: a decode point (single-token steps) counted like a prefill of the same
length, points that will be skipped counted at all, and the first point's one-time
warm-up was extrapolated to every later point. Here each timed point is predicted from
its own mode's call time (the median of the latest point of that mode, scaled to the
new length by the growth seen between that mode's last two points) times the number of
calls the repetition policy will make (budget-bound short calls do not grow with L),
plus the untimed work around the calls seen on points after the first. Attention and
quality passes scale their own observed durations. Plain arithmetic: no torch, no Qt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

TIMED = ("prefill", "decode", "forward")
#: How a mode's call time grows with L before two of its lengths are measured (a decode
#: step reads the whole cache but is dominated by the weights at short lengths).
DEFAULT_GROWTH = {"prefill": 1.0, "forward": 1.0, "decode": 0.3}
#: A decode step before any was timed, as a fraction of a prefill call at the same
#: length (GPT-2 on a CPU: 40 ms vs 137 ms at L=128).
DECODE_PER_PREFILL = 0.25


@dataclass(frozen=True, slots=True)
class Policy:
    """The repetition policy of the sweep (see ``timing.RepeatPolicy``) and where decode
    points are skipped without running (``decode_cap``: depth ≥ cap)."""

    warmup: int
    min_repeats: int
    max_repeats: int
    budget_s: float
    decode_cap: int | None = None
    continue_after_oom: bool = False


@dataclass(slots=True)
class _Seen:
    length: int
    seconds: float  # wall time of the whole entry
    call_s: float | None = None  # median seconds per timed call
    calls: int | None = None  # timed calls made
    first: bool = False  # the sweep's first entry: holds one-time warm-up


@dataclass
class Eta:
    """Feed it the plan, then :meth:`start` before each entry and :meth:`measured` after
    a timed point; :meth:`remaining` is the predicted seconds to the end of the plan."""

    plan: Sequence[tuple[int, str]]
    policy: Policy
    _seen: dict[str, list[_Seen]] = field(default_factory=dict)
    _failed: set[str] = field(default_factory=set)
    _current: int | None = None
    _started: float = 0.0
    _pending: tuple[float | None, int | None] = (None, None)

    def start(self, index: int, now: float) -> None:
        """Entry ``index`` begins at ``now`` (seconds, any monotonic clock); the previous
        entry ended then."""
        if self._current is not None:
            length, mode = self.plan[self._current]
            call_s, calls = self._pending
            self._seen.setdefault(mode, []).append(_Seen(length, now - self._started, call_s, calls,
                                                         first=self._current == 0))
        self._current, self._started, self._pending = index, now, (None, None)

    def measured(self, mode: str, status: str, median_ms: float | None = None, calls: int | None = None) -> None:
        """What the current entry measured: its status and, when timed, its call time."""
        if status == "oom":
            self._failed.add(mode)
        if status == "ok" and median_ms is not None and calls:
            self._pending = (median_ms / 1e3, calls)
        elif status != "ok":
            self._pending = (None, None)

    def remaining(self) -> float | None:
        """Predicted seconds for the current entry and every later one (``None`` until an
        entry has finished: nothing to scale from)."""
        if self._current is None or not self._seen:
            return None
        return sum(self._predict(length, mode) for length, mode in self.plan[self._current:])

    # -- the model -------------------------------------------------------------------
    def _predict(self, length: int, mode: str) -> float:
        p = self.policy
        if mode in self._failed and not p.continue_after_oom:
            return 0.0  # skipped after an out-of-memory at a shorter length
        if mode == "decode" and p.decode_cap is not None and length >= p.decode_cap:
            return 0.0  # skipped: beyond the model's positions
        if mode not in TIMED:
            return self._scaled(mode, length) or self._timed(length, "prefill" if "prefill" in self._seen else
                                                             "forward")
        return self._timed(length, mode)

    def _timed(self, length: int, mode: str) -> float:
        timed = [s for s in self._seen.get(mode, []) if s.call_s is not None]
        share = 1.0  # of the budget-bound count: points whose spread was tight stopped sooner
        if timed:
            call = _grow(timed, length, DEFAULT_GROWTH.get(mode, 1.0))
            last = timed[-1]
            assert last.call_s is not None and last.calls is not None
            share = min(1.0, last.calls / _calls(last.call_s, self.policy))
            later = [s for s in timed if not s.first]
            # The untimed work around the calls (a decode point's prefill, the memory pass
            # bookkeeping), scaled with L, from a point that was not the first.
            extra = (max(0.0, later[-1].seconds - _work(later[-1], self.policy)) * length / later[-1].length
                     if later else 0.0)
        else:
            base = [s for m in ("prefill", "forward") for s in self._seen.get(m, []) if s.call_s is not None]
            if not base:
                return self._scaled(mode, length) or 0.0
            prefill = _grow(base, length, 1.0)
            call, extra = (prefill * DECODE_PER_PREFILL, prefill) if mode == "decode" else (prefill, 0.0)
        calls = max(float(self.policy.min_repeats), _calls(call, self.policy) * share)
        return (self.policy.warmup + calls) * call + extra

    def _scaled(self, mode: str, length: int) -> float | None:
        """An untimed pass (attention, quality): its own durations scaled to ``length``."""
        seen = [s for s in self._seen.get(mode, []) if not s.first] or self._seen.get(mode, [])
        if not seen:
            return None
        return seen[-1].seconds * _ratio(seen, length, 1.0)


def _ratio(seen: Sequence[_Seen], length: int, default: float) -> float:
    """(length / last length) ** growth, the growth from the last two lengths seen."""
    last = seen[-1]
    growth = default
    if len(seen) >= 2 and seen[-2].length != last.length:
        a, b = seen[-2], last
        va = a.call_s if a.call_s is not None else a.seconds
        vb = b.call_s if b.call_s is not None else b.seconds
        if va > 0 and vb > 0:
            growth = min(2.0, max(0.0, math.log(vb / va) / math.log(b.length / a.length)))
    return float((length / last.length) ** growth)


def _grow(seen: Sequence[_Seen], length: int, default: float) -> float:
    last = seen[-1]
    assert last.call_s is not None
    return last.call_s * _ratio(seen, length, default)


def _calls(call_s: float, p: Policy) -> float:
    """Timed calls the policy makes for calls of ``call_s``: at least the minimum, then
    until the budget is spent (or the spread is tight, which this cannot know: the
    budget bound is the conservative side), at most the maximum."""
    if call_s <= 0:
        return float(p.min_repeats)
    return float(min(p.max_repeats, max(p.min_repeats, math.ceil(p.budget_s / call_s))))


def _work(s: _Seen, p: Policy) -> float:
    assert s.call_s is not None and s.calls is not None
    return (p.warmup + s.calls) * s.call_s
