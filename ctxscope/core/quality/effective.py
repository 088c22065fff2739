"""What the quality passes mean, from their records alone (no torch, no numpy): loss
rows with 95 % intervals, the needle grid per task, and the effective context —
*claimed · fits · effective* in one line, every verdict in it decided by an interval
(:mod:`.verdicts`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ctxscope.core.quality.intervals import Wilson, t95
from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityResult
from ctxscope.core.quality.verdicts import LossVerdict, RetrievalVerdict, loss_verdict, retrieval_verdict

__all__ = ["Cell", "Effective", "LossRow", "Saving", "by_length", "effective", "effective_of", "loss_row",
           "loss_rows", "needle_grid", "pool", "savings", "t95", "tasks_of"]


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
    """Needle trials pooled: how many found everything asked, of how many that ran,
    mean key log-probability (the single task), distractor values returned (false
    retrievals), mean recall (the share of expected values returned) and the trials
    that did not run (oom, error, skipped) with their commonest status."""

    found: int
    n: int
    logprob: float | None
    failed: int = 0
    false: int = 0
    recall: float | None = None
    failed_as: str = ""

    @property
    def rate(self) -> float | None:
        return self.found / self.n if self.n else None

    @property
    def wilson(self) -> Wilson:
        return Wilson(self.found, self.n)

    @property
    def interval(self) -> tuple[float, float] | None:
        return self.wilson.interval


def pool(trials: Sequence[NeedleTrial]) -> Cell:
    ran = [t for t in trials if t.status == "ok"]
    failed = [t.status for t in trials if t.status != "ok"]
    logps = [t.key_logprob for t in ran if t.key_logprob is not None]
    recalls = [t.recall for t in ran if t.recall is not None]
    return Cell(found=sum(bool(t.found) for t in ran), n=len(ran),
                logprob=math.fsum(logps) / len(logps) if logps else None, failed=len(failed),
                false=sum(1 for t in ran if t.false_hits), recall=math.fsum(recalls) / len(recalls) if recalls else None,
                failed_as=Counter(failed).most_common(1)[0][0] if failed else "")


def tasks_of(trials: Iterable[NeedleTrial]) -> list[str]:
    """The tasks with grid trials, in the order they were measured."""
    return list(dict.fromkeys(t.task for t in trials if t.kind == "grid"))


def _chosen(trials: Iterable[NeedleTrial], kind: str, task: str | None) -> list[NeedleTrial]:
    return [t for t in trials if t.kind == kind and (task is None or t.task == task)]


def needle_grid(trials: Sequence[NeedleTrial], task: str | None = None
                ) -> tuple[list[int], list[float], dict[tuple[int, float], Cell]]:
    """(lengths, depths, cell per (length, depth)) of the grid trials of ``task``
    (``None``: every task pooled)."""
    grid = [t for t in _chosen(trials, "grid", task) if t.depth is not None]
    lengths = sorted({t.length for t in grid})
    depths = sorted({float(t.depth) for t in grid if t.depth is not None})
    cells = {(n, d): pool([t for t in grid if t.length == n and float(t.depth or 0) == d])
             for n in lengths for d in depths}
    return lengths, depths, cells


def by_length(trials: Sequence[NeedleTrial], kind: str = "grid", task: str | None = None) -> dict[int, Cell]:
    """Trials of one kind (and task; ``None``: all tasks — with the same trials per
    task, their average) pooled per length, all depths and seeds together."""
    chosen = _chosen(trials, kind, task)
    return {n: pool([t for t in chosen if t.length == n]) for n in sorted({t.length for t in chosen})}


def verdict_of(cells: dict[int, Cell], threshold: float, name: str = "retrieval") -> RetrievalVerdict:
    return retrieval_verdict({n: (c.wilson, c.failed, c.failed_as) for n, c in cells.items()}, threshold, name=name)


@dataclass(frozen=True, slots=True)
class Effective:
    """*claimed · fits · effective*: the model's positions, what fits on the device (when
    measured), the retrieval and loss verdicts. ``retrieval``: the effective retrieval
    length (over the tasks' average when several ran); ``loss``: where the loss is flat
    from (``None``: not flat, or not measured)."""

    claimed: int | None
    fits: int | None
    retrieval: int | None
    loss: int | None
    threshold: float
    epsilon: float
    retrieval_measured: bool
    loss_measured: bool
    longest_needle: int | None = None
    retrieval_text: str = ""
    loss_text: str = ""
    tasks: tuple[tuple[str, RetrievalVerdict], ...] = ()  # per task, when more than one ran
    loss_verdict: LossVerdict | None = None

    def line(self) -> str:
        claimed = f"claimed {self.claimed:,}" if self.claimed else "claimed: not stated"
        fits = f"fits {self.fits:,}" if self.fits else "fits: not measured"
        parts = [text for text, measured in ((self.retrieval_text, self.retrieval_measured),
                                             (self.loss_text, self.loss_measured)) if measured and text]
        return f"{claimed} · {fits} · effective: {'; '.join(parts) or 'not measured'}"


def effective(loss: Sequence[LossPoint], needle: Sequence[NeedleTrial], *, claimed: int | None, fits: int | None,
              threshold: float, epsilon: float, text_tokens: int | None = None,
              target_tokens: int | None = None) -> Effective:
    tasks = tasks_of(needle) or ["single"]
    overall = by_length(needle)
    name = "retrieval" if len(tasks) == 1 else f"retrieval (the {len(tasks)} tasks' average)"
    verdict = verdict_of(overall, threshold, name)
    per_task = tuple((task, verdict_of(by_length(needle, task=task), threshold, task)) for task in tasks) \
        if len(tasks) > 1 else ()
    lv = loss_verdict(loss, epsilon, text_tokens=text_tokens, target_tokens=target_tokens)
    return Effective(claimed=claimed, fits=fits, retrieval=verdict.effective, loss=lv.since if lv.kind == "flat" else None,
                     threshold=threshold, epsilon=epsilon, retrieval_measured=any(c.n for c in overall.values()),
                     loss_measured=lv.kind != "not measured", longest_needle=verdict.longest,
                     retrieval_text=verdict.text, loss_text=lv.text, tasks=per_task, loss_verdict=lv)


def effective_of(result: QualityResult, settings: dict[str, Any] | None) -> Effective:
    """:func:`effective` with the thresholds and claimed/fits figures of a run's
    ``settings.quality`` (defaults where a file lacks them)."""
    s = settings or {}
    return effective(result.loss, result.needle, claimed=s.get("claimed"), fits=s.get("fits"),
                     threshold=float(s.get("threshold", 0.9)), epsilon=float(s.get("epsilon", 0.01)),
                     text_tokens=s.get("text_tokens"), target_tokens=s.get("target_tokens"))
