"""The trade-off: what each context length costs (from the run's timed points) beside
what it buys (from its quality passes), the marginal cost per nat of loss saved, and
the knee where the benefit flattens while the cost keeps growing. No torch, no Qt."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ctxscope.core.quality.effective import LossRow, by_length, loss_rows
from ctxscope.core.results import RunResult
from ctxscope.report.compare import peak_bytes


@dataclass(frozen=True, slots=True)
class TradeoffRow:
    """One length. Costs from the sweep's ok points at that length; benefits from the
    quality passes (loss: context of that many tokens; retrieval: needle prompts of
    that length). The marginal figures compare with the previous row."""

    length: int
    prefill_ms: float | None
    decode_ms: float | None
    kv_bytes: int | None
    peak_bytes: int | None
    loss: float | None
    retrieval: float | None
    loss_saved_per_doubling: float | None = None  # nats/token saved per doubling since the previous row
    ms_per_nat: float | None = None  # extra prefill ms per nat/token saved (∞: nothing saved)
    kv_per_nat: float | None = None  # extra KV bytes per nat/token saved


@dataclass(frozen=True, slots=True)
class Tradeoff:
    rows: tuple[TradeoffRow, ...]
    knee: int | None  # the length where benefit minus cost (both scaled 0..1) is largest
    cost_name: str  # what the knee weighs the benefit against

    def knee_text(self) -> str:
        if self.knee is None:
            return "knee: not enough lengths with both loss and cost measured"
        return (f"knee at {self.knee:,} tokens: up to there each doubling still buys loss; beyond it the "
                f"{self.cost_name} keeps growing faster than the loss falls")


def _median(run: RunResult, mode: str, length: int) -> tuple[float | None, int | None, int | None]:
    """Median latency, KV bytes and peak of the ok point of ``mode`` at ``length``."""
    for p in run.points:
        if p.mode == mode and p.length == length and p.status == "ok" and p.latency_ms is not None:
            return p.latency_ms.median, (p.memory.kv_cache_bytes if p.memory else None), peak_bytes(p.memory)
    return None, None, None


def knee(xs: Sequence[int], benefit: Sequence[float], cost: Sequence[float]) -> int | None:
    """The x where ``benefit − cost`` is largest with both rescaled to 0..1 over the
    range (Kneedle's difference curve): where more stops paying for itself."""
    if len(xs) < 3:
        return None
    b_lo, b_hi, c_lo, c_hi = min(benefit), max(benefit), min(cost), max(cost)
    if b_hi <= b_lo or c_hi <= c_lo:
        return None
    score = [(b - b_lo) / (b_hi - b_lo) - (c - c_lo) / (c_hi - c_lo) for b, c in zip(benefit, cost)]
    return xs[max(range(len(xs)), key=score.__getitem__)]


def tradeoff(run: RunResult) -> Tradeoff:
    """Cost beside benefit per length of ``run`` (lengths with neither are left out)."""
    quality = run.quality
    loss = {r.context: r for r in loss_rows(quality.loss)} if quality else {}
    rates = by_length([t for t in quality.needle if t.kind == "grid"]) if quality else {}
    # A needle prompt of length L is stored with its exact token count: L itself.
    rows: list[TradeoffRow] = []
    for length in sorted(set(run.header.settings.lengths)):
        prefill, kv, peak = _median(run, "prefill", length)
        if prefill is None:
            prefill, kv, peak = _median(run, "forward", length)
        decode, _, _ = _median(run, "decode", length)
        measured = loss.get(length)
        cell = rates.get(length)
        rows.append(TradeoffRow(length, prefill, decode, kv, peak, measured.mean if measured else None,
                                cell.rate if cell else None))
    out: list[TradeoffRow] = []
    for prev, row in zip([None, *rows[:-1]], rows):
        if prev is not None and prev.loss is not None and row.loss is not None:
            saved = prev.loss - row.loss
            row = replace(row, loss_saved_per_doubling=saved / math.log2(row.length / prev.length),
                          ms_per_nat=_per(row.prefill_ms, prev.prefill_ms, saved),
                          kv_per_nat=_per(row.kv_bytes, prev.kv_bytes, saved))
        out.append(row)
    with_both = [r for r in out if r.loss is not None and (r.prefill_ms is not None or r.kv_bytes is not None)]
    use_ms = all(r.prefill_ms is not None for r in with_both)
    cost = [float(r.prefill_ms if use_ms else r.kv_bytes) for r in with_both]  # type: ignore[arg-type]
    first = with_both[0].loss if with_both else 0.0
    point = knee([r.length for r in with_both], [first - r.loss for r in with_both], cost)  # type: ignore[operator]
    return Tradeoff(tuple(out), point, "prefill latency" if use_ms else "KV cache")


def _per(cost: float | int | None, before: float | int | None, saved: float) -> float | None:
    if cost is None or before is None:
        return None
    return (cost - before) / saved if saved > 0 else math.inf



#: The least span of a loss axis drawn beside a cost (nats/token): zoomed to the data, a
#: 0.03-nat drop well inside its own interval read as a dramatic crossing of the cost.
MIN_LOSS_SPAN = 0.5


def loss_range(rows: Sequence[LossRow]) -> tuple[float, float] | None:
    """The loss axis of a cost-and-benefit chart: the means and their 95 % intervals,
    widened to at least :data:`MIN_LOSS_SPAN` around their middle (``None``: no loss)."""
    values = [v for r in rows if r.mean is not None for v in (r.mean, r.low, r.high) if v is not None]
    if not values:
        return None
    lo, hi = min(values), max(values)
    pad = max(0.0, MIN_LOSS_SPAN - (hi - lo)) / 2 + 0.05 * (hi - lo)
    return lo - pad, hi + pad


def marks_by_length(marks: Sequence[tuple[int | None, str]]) -> list[tuple[int, str]]:
    """Markers that fall on one length become one line with the names joined ("knee ·
    loss flat"): two rotated labels on one line overlapped."""
    joined: dict[int, list[str]] = {}
    for value, name in marks:
        if value:
            joined.setdefault(value, []).append(name)
    return [(value, " · ".join(names)) for value, names in joined.items()]
