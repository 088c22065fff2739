"""What the quality records say, as statistical statements (no torch, no numpy).

Loss, between measured contexts, paired window by window:

- **falling**: a step's saving per doubling has its 95 % interval above +ε;
- **rising**: its 95 % interval is below −ε;
- **flat from C**: every paired difference between contexts from C to the longest is
  equivalent to zero within ±ε — two one-sided tests at 5 %, i.e. each 90 % interval
  lies inside (−ε, +ε). A total, not a per-doubling figure: a steady 0.009/doubling
  that adds up to 0.027 is not flat, it is *falling slowly*;
- otherwise **not resolved with N windows**, with what would resolve it.

Retrieval at a length is above / below the threshold when its 95 % Wilson interval is;
the effective length is the longest measured length up to which it is above at every
measured length (RULER's effective length — Hsieh et al. 2024, arXiv:2404.06654,
Table 3: the longest length whose score exceeds the threshold — read as "stays above",
decided by the interval rather than the point score).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ctxscope.core.quality.intervals import Paired, Wilson
from ctxscope.core.quality.records import LossPoint


@dataclass(frozen=True, slots=True)
class Step:
    """From one measured context to the next: the paired saving per doubling."""

    start: int
    end: int
    saving: Paired  # nats/token per doubling, start minus end (positive: context helped)
    verdict: str  # falling | rising | flat | unresolved


@dataclass(frozen=True, slots=True)
class LossVerdict:
    """``kind``: flat, falling, rising, unresolved or not measured; ``since``: where a
    flat stretch starts (``None`` otherwise)."""

    kind: str
    since: int | None
    text: str


def _ok(points: Sequence[LossPoint]) -> list[LossPoint]:
    by_context = {p.context: p for p in points}
    ok = [by_context[c] for c in sorted(by_context) if by_context[c].status == "ok" and by_context[c].window_nll]
    if not ok:
        return []
    n = len(ok[0].window_nll)
    return [p for p in ok if len(p.window_nll) == n]  # pairing needs the same windows


def paired(a: LossPoint, b: LossPoint, *, per_doubling: bool = False) -> Paired:
    """``a``'s loss minus ``b``'s, window by window (per doubling of context if asked)."""
    scale = math.log2(b.context / a.context) if per_doubling else 1.0
    return Paired.of([(x - y) / scale for x, y in zip(a.window_nll, b.window_nll)])


def steps(points: Sequence[LossPoint], epsilon: float) -> list[Step]:
    """The step between each pair of consecutive measured contexts, with its verdict."""
    ok = _ok(points)
    out = []
    for a, b in zip(ok, ok[1:]):
        saving = paired(a, b, per_doubling=True)
        verdict = ("falling" if saving.above(epsilon) else "rising" if saving.below(-epsilon)
                   else "flat" if saving.equivalent(epsilon) else "unresolved")
        out.append(Step(a.context, b.context, saving, verdict))
    return out


def _flat_tail(ok: list[LossPoint], epsilon: float) -> int | None:
    """The first index from which every pair of contexts is equivalent within ±ε."""
    best = None
    for k in range(len(ok) - 2, -1, -1):
        if not all(paired(ok[k], b).equivalent(epsilon) for b in ok[k + 1:]):
            break
        best = k  # a longer tail holds only if every pair with the new start holds too
    return best


def _ci(p: Paired) -> str:
    ci = p.ci95
    return f"{p.mean:+.4f}" + ("" if ci is None else f" ({ci[0]:+.4f} – {ci[1]:+.4f})")


def _windows(n: int) -> str:
    return f"{n} window{'s' if n != 1 else ''}"


def loss_verdict(points: Sequence[LossPoint], epsilon: float, *, text_tokens: int | None = None,
                 target_tokens: int | None = None) -> LossVerdict:
    """The loss curve in one statement (see the module's rules). ``text_tokens`` and
    ``target_tokens`` let an unresolved verdict say whether the text holds the windows
    that would resolve it."""
    ok = _ok(points)
    failed = sorted({p.context for p in points if p.status != "ok"} - {p.context for p in ok})
    inside = [c for c in failed if ok and ok[0].context < c < ok[-1].context]
    gap = "".join(f"; {c:,} not measured ({next(p.status for p in points if p.context == c)})" for c in inside)
    if len(ok) < 2:
        return LossVerdict("not measured", None, "loss: fewer than two contexts measured")
    windows = len(ok[0].window_nll)
    if windows < 2:
        return LossVerdict("unresolved", None, f"loss not resolved with 1 window (no interval: --quality-windows ≥ 2){gap}")
    walk = steps(points, epsilon)
    k = _flat_tail(ok, epsilon)
    first, last = ok[0].context, ok[-1].context
    if k == 0:
        return LossVerdict("flat", first, f"loss flat from {first:,} (the shortest measured: it may flatten sooner) "
                                          f"to {last:,} (within ±{epsilon:g} nats/token, TOST){gap}")
    if k is not None:
        into, start = walk[k - 1], ok[k].context
        flat = f"flat from {start:,} to {last:,} (within ±{epsilon:g} nats/token, TOST){gap}"
        if into.verdict == "falling":
            return LossVerdict("flat", start, f"loss falls until {start:,}, {flat}")
        if into.verdict == "rising":
            return LossVerdict("flat", start, f"loss rises until {start:,}, {flat}")
        if into.verdict == "unresolved":
            return LossVerdict("flat", start, f"loss {flat}; {into.start:,} → {start:,} not resolved with "
                                              f"{_windows(windows)}")
    slow = _slow_trend(ok, walk, epsilon)
    if slow is not None:
        return slow
    if k is not None:  # the step into the flat stretch is flat too, and nothing before adds up
        return LossVerdict("flat", ok[k].context, f"loss flat from {ok[k].context:,} to {last:,} (within ±{epsilon:g} "
                                                  f"nats/token, TOST); where it flattens is not resolved{gap}")
    step = walk[-1]
    where = f"{step.start:,} → {step.end:,}"
    if step.verdict == "falling":
        return LossVerdict("falling", None, f"loss still falling at {last:,}: {where} saves {_ci(step.saving)} "
                                            f"nats/token per doubling, above ε = {epsilon:g}{gap}")
    if step.verdict == "rising":
        return LossVerdict("rising", None, f"loss rising: {where} adds {_ci(_neg(step.saving))} nats/token per "
                                           f"doubling, beyond ε = {epsilon:g}{gap}")
    return LossVerdict("unresolved", None, f"loss not resolved with {_windows(windows)}: {where} saves "
                                           f"{_ci(step.saving)} nats/token per doubling, neither inside nor beyond "
                                           f"±{epsilon:g}; {_resolve(step.saving, epsilon, last, text_tokens, target_tokens)}"
                                           f"{gap}")


def _neg(p: Paired) -> Paired:
    return Paired(-p.mean, p.sd, p.n)


def _slow_trend(ok: list[LossPoint], walk: list[Step], epsilon: float) -> LossVerdict | None:
    """Steps each flat within ε whose total from an earlier context is significantly
    beyond it (only spans of such steps: a step that falls by itself is no slow trend)."""
    last = ok[-1]
    first = len(walk)
    while first > 0 and walk[first - 1].verdict == "flat":
        first -= 1
    for a in ok[first:-1]:
        total = paired(a, last)
        doublings = math.log2(last.context / a.context)
        if total.above(epsilon) or total.below(-epsilon):
            word = "falling" if total.mean > 0 else "rising"
            return LossVerdict(word, None, f"loss {word} slowly: {a.context:,} → {last.context:,} "
                                           f"{'saves' if total.mean > 0 else 'adds'} {_ci(total if total.mean > 0 else _neg(total))} "
                                           f"nats/token in total ({abs(total.mean) / doublings:.4f} per doubling), "
                                           f"beyond ε = {epsilon:g} though no doubling alone is")
    return None


def _resolve(saving: Paired, epsilon: float, longest: int, text_tokens: int | None, target_tokens: int | None) -> str:
    need = saving.windows_to_resolve(epsilon)
    if need is None:
        return "more windows (--quality-windows) or a longer text would narrow it"
    said = f"about {need} windows (--quality-windows) would resolve it if they vary as these do"
    if text_tokens and target_tokens:
        most = max(0, text_tokens - longest) // target_tokens
        if need > most:
            said += f"; this text holds at most {most} windows of {target_tokens} tokens after {longest:,}: a longer text"
    return said


@dataclass(frozen=True, slots=True)
class RetrievalVerdict:
    """``effective``: the longest length up to which retrieval is above the threshold
    at every measured length (``None``: not even at the shortest)."""

    effective: int | None
    longest: int | None
    text: str


def _rate(cell: Wilson) -> str:
    ci = cell.interval
    return f"{cell.found}/{cell.n}" + ("" if ci is None else f", 95 % {ci[0]:.0%}–{ci[1]:.0%}")


def retrieval_verdict(cells: dict[int, tuple[Wilson, int, str]], threshold: float, *,
                      name: str = "retrieval") -> RetrievalVerdict:
    """``cells``: per length, (found/ran, trials that did not run, their status)."""
    lengths = sorted(cells)
    measured = [n for n in lengths if cells[n][0].n]
    if not measured:
        return RetrievalVerdict(None, None, f"{name}: not measured")
    pct = f"{threshold:.0%}"
    effective = None
    stop = None
    for n in lengths:
        verdict = cells[n][0].verdict(threshold)
        if verdict != "above":
            stop = (n, verdict)
            break
        effective = n
    longest = measured[-1]
    if stop is None:
        return RetrievalVerdict(effective, longest, f"{name} ≥ {pct} up to {effective:,} (the longest measured)")
    n, verdict = stop
    cell, failed, status = cells[n]
    if verdict == "not run":
        why = f"{n:,} not measured ({failed} trials: {status})"
    elif verdict == "below":
        why = f"below {pct} at {n:,}" + (" (the shortest measured; " if effective is None else " (") + f"{_rate(cell)})"
    else:
        need = cell.trials_to_resolve(threshold)
        why = (f"not resolved against {pct} at {n:,} with {cell.n} trials ({_rate(cell)}"
               + (f"; about {need} trials would resolve it: --needle-seeds)" if need else ")"))
    if effective is not None:
        return RetrievalVerdict(effective, longest, f"{name} ≥ {pct} up to {effective:,}; {why}")
    above = [m for m in lengths if m > n and cells[m][0].verdict(threshold) == "above"]
    later = ""
    if above:
        later = f"; ≥ {pct} at {above[0]:,} – {above[-1]:,}" if len(above) > 1 else f"; ≥ {pct} at {above[0]:,}"
        if any(cells[m][0].verdict(threshold) != "above" for m in lengths if above[0] <= m <= above[-1]):
            later += " (not at every length between)"
    return RetrievalVerdict(None, longest, f"{name} {why}{later}")
