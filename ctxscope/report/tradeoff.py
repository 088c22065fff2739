"""The trade-off: what each context length costs (from the run's timed points, medians
with their p10–p90 spread) beside what it buys (from its quality passes, with their
intervals), the marginal cost per nat of loss saved, and the knee where the benefit
flattens while the cost keeps growing. No torch, no Qt.

The knee rescales benefit and cost to 0..1 over the measured range (Kneedle's
difference curve) — only when both are real: a benefit none of whose differences is
significant, or a cost that does not grow beyond its own spread, would be rescaled
noise, so then there is no knee and the text says why."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ctxscope.core.quality.effective import LossRow, by_length, loss_rows, savings
from ctxscope.core.quality.verdicts import steps
from ctxscope.core.results import RunResult
from ctxscope.report.compare import peak_bytes
from ctxscope.report.fmt import fmt_ms


@dataclass(frozen=True, slots=True)
class TradeoffRow:
    """One length. Costs from the sweep's ok points at that length; benefits from the
    quality passes (loss: context of that many tokens; retrieval: needle prompts of
    that length, every task pooled). The marginal figures compare with the previous row."""

    length: int
    prefill_ms: float | None
    decode_ms: float | None
    kv_bytes: int | None
    peak_bytes: int | None
    loss: float | None
    retrieval: float | None
    loss_saved_per_doubling: float | None = None  # nats/token saved per doubling since the previous row (paired)
    ms_per_nat: float | None = None  # extra prefill ms per nat/token saved (∞: nothing saved); None: not significant
    kv_per_nat: float | None = None  # extra KV bytes per nat/token saved
    prefill_p10: float | None = None
    prefill_p90: float | None = None
    saved_low: float | None = None  # the paired 95 % interval of loss_saved_per_doubling
    saved_high: float | None = None
    retrieval_low: float | None = None  # Wilson 95 %
    retrieval_high: float | None = None

    @property
    def saving_significant(self) -> bool:
        return self.saved_low is not None and self.saved_low > 0

    @property
    def per_nat_text(self) -> str:
        """The extra prefill time per nat/token saved, as the terminal and HTML show it:
        "-" (nothing before it), "n.s." (the saving is not significant), "no saving"."""
        if self.loss_saved_per_doubling is None:
            return "-"
        if self.ms_per_nat is None:
            return "n.s." if not self.saving_significant else "-"
        return "no saving" if math.isinf(self.ms_per_nat) else fmt_ms(self.ms_per_nat)


@dataclass(frozen=True, slots=True)
class Knee:
    benefit: str  # "loss" or "retrieval"
    length: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Tradeoff:
    rows: tuple[TradeoffRow, ...]
    knee: int | None  # the loss knee's length (else the retrieval knee's): where the markers go
    cost_name: str  # what the knee weighs the benefit against
    knees: tuple[Knee, ...] = ()

    def knee_text(self) -> str:
        if not self.knees:
            return "knee: not enough lengths with both loss and cost measured"
        return "; ".join(k.text for k in self.knees)


def _median(run: RunResult, mode: str, length: int) -> tuple[float | None, int | None, int | None, float | None,
                                                               float | None]:
    """Median latency, KV bytes, peak, p10 and p90 of the ok point of ``mode`` at ``length``."""
    for p in run.points:
        if p.mode == mode and p.length == length and p.status == "ok" and p.latency_ms is not None:
            lat = p.latency_ms
            return lat.median, (p.memory.kv_cache_bytes if p.memory else None), peak_bytes(p.memory), lat.p10, lat.p90
    return None, None, None, None, None


def knee(xs: Sequence[int], benefit: Sequence[float], cost: Sequence[float]) -> int | None:
    """The x where ``benefit − cost`` is largest with both rescaled to 0..1 over the
    range (Kneedle's difference curve): where more stops paying for itself. The caller
    decides first that benefit and cost are real (see the module)."""
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
    rates = by_length(quality.needle) if quality else {}
    step = {s.end: s for s in steps(quality.loss, 0.0)} if quality else {}
    rows: list[TradeoffRow] = []
    for length in sorted(set(run.header.settings.lengths)):
        prefill, kv, peak, p10, p90 = _median(run, "prefill", length)
        if prefill is None:
            prefill, kv, peak, p10, p90 = _median(run, "forward", length)
        decode = _median(run, "decode", length)[0]
        measured, cell = loss.get(length), rates.get(length)
        ci = cell.interval if cell else None
        rows.append(TradeoffRow(length, prefill, decode, kv, peak, measured.mean if measured else None,
                                cell.rate if cell else None, prefill_p10=p10, prefill_p90=p90,
                                retrieval_low=ci[0] if ci else None, retrieval_high=ci[1] if ci else None))
    out: list[TradeoffRow] = []
    for prev, row in zip([None, *rows[:-1]], rows):
        s = step.get(row.length)
        if prev is not None and s is not None and s.start == prev.length:
            ci = s.saving.ci95
            saved = s.saving.mean * math.log2(row.length / prev.length)
            row = replace(row, loss_saved_per_doubling=s.saving.mean, saved_low=ci[0] if ci else None,
                          saved_high=ci[1] if ci else None)
            if row.saving_significant:  # a cost per nat of a saving that may be zero means nothing
                row = replace(row, ms_per_nat=_per(row.prefill_ms, prev.prefill_ms, saved),
                              kv_per_nat=_per(row.kv_bytes, prev.kv_bytes, saved))
        out.append(row)
    knees, cost_name = _knees(run, out)
    first = next((k.length for k in knees if k.benefit == "loss" and k.length), None)
    return Tradeoff(tuple(out), first or next((k.length for k in knees if k.length), None), cost_name, tuple(knees))


def _cost(rows: list[TradeoffRow]) -> tuple[str, list[float], str | None]:
    """The cost series, its name, and why it decides no knee (``None``: it grows beyond
    its spread: the longest's p10 above the shortest's p90)."""
    use_ms = all(r.prefill_ms is not None for r in rows)
    if not use_ms:
        return "KV cache", [float(r.kv_bytes or 0) for r in rows], None  # counted bytes: no spread
    first, last = rows[0], rows[-1]
    cost = [float(r.prefill_ms or 0) for r in rows]
    if first.prefill_p90 is not None and last.prefill_p10 is not None and last.prefill_p10 <= first.prefill_p90:
        return "prefill latency", cost, (f"no knee: the prefill latency does not grow beyond its spread "
                                         f"({first.length:,}: p10–p90 {fmt_ms(first.prefill_p10 or 0)}–"
                                         f"{fmt_ms(first.prefill_p90)}; {last.length:,}: {fmt_ms(last.prefill_p10)}–"
                                         f"{fmt_ms(last.prefill_p90 or 0)})")
    return "prefill latency", cost, None


def _spread(r: TradeoffRow) -> str:
    if r.prefill_ms is None:
        return ""
    if r.prefill_p10 is None or r.prefill_p90 is None:
        return f"prefill {fmt_ms(r.prefill_ms)}"
    return f"prefill {fmt_ms(r.prefill_ms)}, p10–p90 {fmt_ms(r.prefill_p10)}–{fmt_ms(r.prefill_p90)}"


def _knees(run: RunResult, rows: list[TradeoffRow]) -> tuple[list[Knee], str]:
    out: list[Knee] = []
    cost_name = "prefill latency"
    quality = run.quality
    with_loss = [r for r in rows if r.loss is not None and (r.prefill_ms is not None or r.kv_bytes is not None)]
    if quality is not None and len(with_loss) >= 3:
        cost_name, cost, flat = _cost(with_loss)
        saved = {s.context: s for s in savings([p for p in quality.loss if p.context in {r.length for r in with_loss}])}
        top = max(saved.values(), key=lambda s: s.mean, default=None)
        if top is None or top.low is None or top.low <= 0:  # the top of the 0..1 scale must be real
            out.append(Knee("loss", None, f"no knee: the loss benefit is not significant (no length saves loss vs "
                                          f"{with_loss[0].length:,} beyond its paired 95 % interval)"))
        elif flat is not None:
            out.append(Knee("loss", None, flat))
        else:
            benefit = [saved[r.length].mean if r.length in saved else 0.0 for r in with_loss]
            at = knee([r.length for r in with_loss], benefit, cost)
            row = next((r for r in with_loss if r.length == at), None)
            if at is None or row is None:
                out.append(Knee("loss", None, "no knee: benefit or cost does not change over the lengths"))
            else:
                s = saved.get(at)
                gain = "" if s is None else f"loss saved {s.mean:+.4f}" + (
                    f" ({s.low:+.4f} – {s.high:+.4f})" if s.low is not None and s.high is not None else "") + \
                    f" nats/token vs {with_loss[0].length:,}; "
                out.append(Knee("loss", at, f"knee at {at:,} tokens ({gain}{_spread(row) or cost_name}): up to there "
                                            f"each doubling still buys loss; beyond it the {cost_name} keeps growing "
                                            "faster than the loss falls"))
    with_rate = [r for r in rows if r.retrieval is not None and r.prefill_ms is not None]
    if len(with_rate) >= 3:
        name, cost, flat = _cost(with_rate)
        lows = [r.retrieval_low for r in with_rate if r.retrieval_low is not None]
        highs = [r.retrieval_high for r in with_rate if r.retrieval_high is not None]
        if not lows or max(lows) <= min(highs):
            out.append(Knee("retrieval", None, "no knee: the retrieval benefit is not significant (the rates' Wilson "
                                               "95 % intervals overlap at every length)"))
        elif flat is not None:
            out.append(Knee("retrieval", None, flat.replace("no knee", "no retrieval knee")))
        else:
            at = knee([r.length for r in with_rate], [float(r.retrieval or 0) for r in with_rate], cost)
            row = next((r for r in with_rate if r.length == at), None)
            if at is not None and row is not None:
                out.append(Knee("retrieval", at, f"retrieval knee at {at:,} tokens ({row.retrieval:.0%} retrieved; "
                                                 f"{_spread(row)}): beyond it the {name} keeps growing faster than "
                                                 "retrieval improves"))
    return out, cost_name


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
