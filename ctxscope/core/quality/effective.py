"""What the quality passes mean, from their records alone (no torch, no numpy): loss
rows with 95 % intervals, the needle grid, and the effective context —
*claimed · fits · effective* in one line."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityResult

# Two-sided 95 % Student t quantiles by degrees of freedom (few windows: the normal 1.96
# would understate the interval badly at 3 degrees of freedom).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}


def t95(dof: int) -> float:
    """The 95 % two-sided t quantile for ``dof`` degrees of freedom (the next smaller
    tabulated value's: a slightly wider interval, never narrower)."""
    if dof < 1:
        return math.inf
    return _T95[max(k for k in _T95 if k <= dof)] if dof <= 120 else 1.960


@dataclass(frozen=True, slots=True)
class LossRow:
    """One context length: mean NLL over windows (nats/token), its 95 % interval (t over
    windows), perplexity, and how many windows; ``mean`` is ``None`` unless ok."""

    context: int
    status: str
    mean: float | None
    low: float | None
    high: float | None
    n: int
    error: str | None = None

    @property
    def perplexity(self) -> float | None:
        return math.exp(self.mean) if self.mean is not None and self.mean < 700 else None


def loss_row(point: LossPoint) -> LossRow:
    values = point.window_nll
    if point.status != "ok" or not values:
        return LossRow(point.context, point.status, None, None, None, 0, point.error)
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return LossRow(point.context, "ok", mean, None, None, n)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t95(n - 1) * sd / math.sqrt(n)
    return LossRow(point.context, "ok", mean, mean - half, mean + half, n)


def loss_rows(points: Iterable[LossPoint]) -> list[LossRow]:
    """One row per context, ascending (a repeated context keeps its last record)."""
    by_context = {p.context: p for p in points}
    return [loss_row(by_context[c]) for c in sorted(by_context)]


@dataclass(frozen=True, slots=True)
class Saving:
    """Loss saved at ``context`` relative to the shortest measured context, paired window
    by window (nats/token): windows differ far more from each other than one window does
    across contexts, so the paired interval is the one that says whether context helped."""

    context: int
    mean: float
    low: float | None
    high: float | None


def savings(points: Iterable[LossPoint]) -> list[Saving]:
    """:class:`Saving` for every ok context after the shortest ok one (same windows)."""
    ok = sorted((p for p in points if p.status == "ok" and p.window_nll), key=lambda p: p.context)
    if len(ok) < 2:
        return []
    base = ok[0].window_nll
    out = []
    for p in ok[1:]:
        if len(p.window_nll) != len(base):
            continue
        diffs = [a - b for a, b in zip(base, p.window_nll)]
        n = len(diffs)
        mean = math.fsum(diffs) / n
        if n < 2:
            out.append(Saving(p.context, mean, None, None))
            continue
        half = t95(n - 1) * math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)) / math.sqrt(n)
        out.append(Saving(p.context, mean, mean - half, mean + half))
    return out


@dataclass(frozen=True, slots=True)
class Cell:
    """Needle trials pooled: retrieval rate, mean key log-probability, counts."""

    found: int
    n: int
    logprob: float | None
    failed: int = 0  # trials that did not run (oom, error, skipped)

    @property
    def rate(self) -> float | None:
        return self.found / self.n if self.n else None


def pool(trials: Sequence[NeedleTrial]) -> Cell:
    ran = [t for t in trials if t.status == "ok"]
    failed = len(trials) - len(ran)
    logps = [t.key_logprob for t in ran if t.key_logprob is not None]
    return Cell(found=sum(bool(t.found) for t in ran), n=len(ran),
                logprob=math.fsum(logps) / len(logps) if logps else None, failed=failed)


def needle_grid(trials: Sequence[NeedleTrial]) -> tuple[list[int], list[float], dict[tuple[int, float], Cell]]:
    """(lengths, depths, cell per (length, depth)) of the grid trials."""
    grid = [t for t in trials if t.kind == "grid" and t.depth is not None]
    lengths = sorted({t.length for t in grid})
    depths = sorted({float(t.depth) for t in grid if t.depth is not None})
    cells = {(n, d): pool([t for t in grid if t.length == n and float(t.depth or 0) == d])
             for n in lengths for d in depths}
    return lengths, depths, cells


def by_length(trials: Sequence[NeedleTrial], kind: str = "grid") -> dict[int, Cell]:
    """Trials of one kind pooled per length (all depths and seeds together)."""
    chosen = [t for t in trials if t.kind == kind]
    return {n: pool([t for t in chosen if t.length == n]) for n in sorted({t.length for t in chosen})}


def effective_retrieval(rates: dict[int, Cell], threshold: float) -> int | None:
    """The longest length up to which retrieval stays ≥ ``threshold`` at every measured
    length (``None``: below it already at the shortest)."""
    best = None
    for length in sorted(rates):
        rate = rates[length].rate
        if rate is None:
            continue
        if rate < threshold:
            break
        best = length
    return best


def loss_saturation(rows: Sequence[LossRow], epsilon: float) -> int | None:
    """The context beyond which every further doubling lowers the loss by less than
    ``epsilon`` nats/token (slopes between measured contexts, scaled per doubling);
    ``None`` with fewer than two measured contexts or when it never flattens."""
    ok = [r for r in rows if r.mean is not None]
    if len(ok) < 2:
        return None
    answer = None
    for a, b in zip(reversed(ok[:-1]), reversed(ok[1:])):
        per_doubling = (a.mean - b.mean) / math.log2(b.context / a.context)  # type: ignore[operator]
        if per_doubling >= epsilon:
            break
        answer = a.context
    return answer


@dataclass(frozen=True, slots=True)
class Effective:
    """*claimed · fits · effective*: the model's positions, what fits on the device (when
    measured), the retrieval and loss limits (``None``: not reached or not measured)."""

    claimed: int | None
    fits: int | None
    retrieval: int | None
    loss: int | None
    threshold: float
    epsilon: float
    retrieval_measured: bool
    loss_measured: bool
    longest_needle: int | None = None  # the longest length with needle trials: retrieval may hold beyond it

    def line(self) -> str:
        def n(v: int | None) -> str:
            return f"{v:,}" if v is not None else "?"

        claimed = f"claimed {n(self.claimed)}" if self.claimed else "claimed: not stated"
        fits = f"fits {n(self.fits)}" if self.fits else "fits: not measured"
        parts = []
        if self.retrieval_measured:
            beyond = " (the longest measured)" if self.retrieval and self.retrieval == self.longest_needle else ""
            parts.append(f"retrieval ≥ {self.threshold:.0%} up to {n(self.retrieval)}{beyond}" if self.retrieval
                         else f"retrieval below {self.threshold:.0%} at every length")
        if self.loss_measured:
            parts.append(f"loss flat (< {self.epsilon:g} nats/doubling) from {n(self.loss)}" if self.loss
                         else f"loss still falling ≥ {self.epsilon:g} nats/doubling")
        return f"{claimed} · {fits} · effective: {'; '.join(parts) or 'not measured'}"


def effective(loss: Sequence[LossPoint], needle: Sequence[NeedleTrial], *, claimed: int | None, fits: int | None,
              threshold: float, epsilon: float) -> Effective:
    rates = by_length(needle)
    rows = loss_rows(loss)
    return Effective(claimed=claimed, fits=fits, retrieval=effective_retrieval(rates, threshold),
                     loss=loss_saturation(rows, epsilon), threshold=threshold, epsilon=epsilon,
                     retrieval_measured=any(c.n for c in rates.values()),
                     loss_measured=sum(r.mean is not None for r in rows) >= 2,
                     longest_needle=max((n for n, c in rates.items() if c.n), default=None))


def effective_of(result: QualityResult, settings: dict[str, Any] | None) -> Effective:
    """:func:`effective` with the thresholds and claimed/fits figures of a run's
    ``settings.quality`` (defaults where a file lacks them)."""
    s = settings or {}
    return effective(result.loss, result.needle, claimed=s.get("claimed"), fits=s.get("fits"),
                     threshold=float(s.get("threshold", 0.9)), epsilon=float(s.get("epsilon", 0.01)))


def _r(v: float | None, digits: int = 5) -> float | None:
    return None if v is None else round(v, digits)


def derived(result: QualityResult, settings: dict[str, Any] | None) -> dict[str, Any]:
    """Figures derived from the records, for the run JSON (scripts read these; ctxscope
    recomputes them): loss per context, retrieval per length and per cell, the controls,
    and the effective context."""
    eff = effective_of(result, settings)
    lengths, depths, cells = needle_grid(result.needle)
    adjacent = pool([t for t in result.needle if t.kind == "adjacent"])
    return {
        "loss": [{"context": r.context, "status": r.status, "mean_nll": _r(r.mean), "ci95_low": _r(r.low),
                  "ci95_high": _r(r.high), "perplexity": _r(r.perplexity, 3), "windows": r.n}
                 for r in loss_rows(result.loss)],
        "saved_vs_shortest": [{"context": s.context, "mean": _r(s.mean), "ci95_low": _r(s.low),
                               "ci95_high": _r(s.high)} for s in savings(result.loss)],
        "retrieval": [{"length": n, "rate": _r(c.rate, 4), "trials": c.n, "mean_key_logprob": _r(c.logprob, 4)}
                      for n, c in by_length(result.needle).items()],
        "grid": [{"length": n, "depth": d, "rate": _r(cells[(n, d)].rate, 4), "trials": cells[(n, d)].n,
                  "mean_key_logprob": _r(cells[(n, d)].logprob, 4)} for n in lengths for d in depths],
        "controls": {"adjacent": {"rate": _r(adjacent.rate, 4), "trials": adjacent.n,
                                  "mean_key_logprob": _r(adjacent.logprob, 4)},
                     "no_key": [{"length": n, "rate": _r(c.rate, 4), "trials": c.n,
                                 "mean_key_logprob": _r(c.logprob, 4)}
                                for n, c in by_length(result.needle, "no-key").items()]},
        "effective": {"claimed": eff.claimed, "fits": eff.fits, "retrieval": eff.retrieval, "loss": eff.loss,
                      "threshold": eff.threshold, "epsilon": eff.epsilon, "line": eff.line()},
    }
