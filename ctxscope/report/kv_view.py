"""KV-cache strategies on one axis: per strategy, what it saves (KV bytes per token from
the cache's own storage, so how much more context the same KV memory holds, and the
longest context that fits when ``maxctx`` measured it), what it costs (decode latency at
depth against the default cache) and what it does to the model (Δloss against the default
cache on the same windows, paired window by window, and retrieval).

Runs are grouped by everything but the cache strategy; within a group the ``dynamic`` run
is the baseline. No torch: reports and the app build this from saved runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ctxscope.core.quality.effective import by_length
from ctxscope.core.quality.intervals import Paired
from ctxscope.core.results import RunResult
from ctxscope.core.units import fmt_bytes
from ctxscope.report.compare import RunKey

BASELINE = "dynamic"


@dataclass(frozen=True, slots=True)
class StrategyRow:
    """One strategy's figures against the default cache of the same configuration."""

    run: int  # index into the runs given
    baseline: int
    strategy: str
    kv_per_token: float | None  # bytes, at the deepest decode (else prefill) point measured
    base_kv_per_token: float | None
    kv_depth: int | None  # the length those bytes were read at
    decode: tuple[tuple[int, float], ...]  # (depth, median ÷ baseline median − 1)
    dloss: tuple[tuple[int, Paired], ...]  # (context, this loss − baseline loss, paired over windows)
    found: tuple[tuple[int, int, int], ...]  # (length, found, trials): grid retrieval
    fits: int | None  # the longest context that fits here (``--fits``: maxctx's answer), if known
    loss_note: str | None = None  # why Δloss is not shown (other windows or texts)
    #: ``offload``: (depth, KV bytes in host memory, KV bytes in all) at the deepest decode
    #: point, and the host↔device bytes one decode step moved there.
    host: tuple[int, int, int] | None = None
    traffic: int | None = None

    @property
    def context_ratio(self) -> float | None:
        """How many times the default cache's context the same KV memory holds."""
        if not self.kv_per_token or not self.base_kv_per_token:
            return None
        return self.base_kv_per_token / self.kv_per_token


def _kv_per_token(run: RunResult) -> tuple[float | None, int | None]:
    for mode in ("decode", "prefill"):
        ok = [p for p in run.points if p.mode == mode and p.status == "ok" and p.memory is not None
              and p.memory.kv_cache_bytes]
        if ok:
            deepest = max(ok, key=lambda p: p.length)
            assert deepest.memory is not None and deepest.memory.kv_cache_bytes is not None
            return deepest.memory.kv_cache_bytes / (deepest.length * deepest.batch_size), deepest.length
    return None, None


def _offload(run: RunResult) -> tuple[tuple[int, int, int] | None, int | None]:
    ok = [p for p in run.points if p.mode == "decode" and p.status == "ok" and p.memory is not None
          and p.memory.kv_host_bytes is not None]
    if not ok:
        return None, None
    p = max(ok, key=lambda p: p.length)
    assert p.memory is not None and p.memory.kv_host_bytes is not None
    return (p.length, p.memory.kv_host_bytes, p.memory.kv_cache_bytes), p.memory.kv_traffic_bytes


def _decode(run: RunResult, base: RunResult) -> tuple[tuple[int, float], ...]:
    def medians(r: RunResult) -> dict[int, float]:
        return {p.length: p.latency_ms.median for p in r.points
                if p.mode == "decode" and p.status == "ok" and p.latency_ms is not None}

    mine, theirs = medians(run), medians(base)
    return tuple((n, mine[n] / theirs[n] - 1) for n in sorted(mine) if n in theirs and theirs[n] > 0)


def _same_windows(run: RunResult, base: RunResult) -> bool:
    a, b = run.header.settings.quality or {}, base.header.settings.quality or {}
    return (a.get("text_sha256"), a.get("window_starts"), a.get("target_tokens"), a.get("bos")) == \
        (b.get("text_sha256"), b.get("window_starts"), b.get("target_tokens"), b.get("bos"))


def _dloss(run: RunResult, base: RunResult) -> tuple[tuple[tuple[int, Paired], ...], str | None]:
    if run.quality is None or base.quality is None or not run.quality.loss or not base.quality.loss:
        return (), None
    if not _same_windows(run, base):
        return (), "Δloss not paired: the runs scored other windows or texts"
    theirs = {p.context: p.window_nll for p in base.quality.loss if p.status == "ok"}
    out = []
    for p in sorted(run.quality.loss, key=lambda p: p.context):
        other = theirs.get(p.context)
        if p.status == "ok" and other and len(other) == len(p.window_nll):
            out.append((p.context, Paired.of([a - b for a, b in zip(p.window_nll, other)])))
    return tuple(out), None


def _found(run: RunResult) -> tuple[tuple[int, int, int], ...]:
    if run.quality is None or not run.quality.needle:
        return ()
    return tuple((n, c.found, c.n) for n, c in by_length(run.quality.needle).items() if c.n)


def _group(run: RunResult) -> RunKey:
    return replace(RunKey.of(run), cache=BASELINE)


def strategies(runs: Sequence[RunResult]) -> list[StrategyRow]:
    """A row per run whose cache strategy is not the default and whose configuration
    otherwise matches a default-cache run among ``runs`` (empty when none does)."""
    bases: dict[RunKey, int] = {}
    for i, run in enumerate(runs):
        if getattr(run.header.settings, "cache", BASELINE) == BASELINE:
            bases.setdefault(_group(run), i)
    rows = []
    for i, run in enumerate(runs):
        strategy = getattr(run.header.settings, "cache", BASELINE)
        b = bases.get(_group(run))
        if strategy == BASELINE or b is None:
            continue
        base = runs[b]
        kv, depth = _kv_per_token(run)
        base_kv, _ = _kv_per_token(base)
        dloss, note = _dloss(run, base)
        fits = (run.header.settings.quality or {}).get("fits")
        host, traffic = _offload(run)
        rows.append(StrategyRow(run=i, baseline=b, strategy=strategy, kv_per_token=kv, base_kv_per_token=base_kv,
                                kv_depth=depth, decode=_decode(run, base), dloss=dloss, found=_found(run),
                                fits=fits if isinstance(fits, int) else None, loss_note=note, host=host,
                                traffic=traffic))
    return rows


def _signed(value: float, digits: int = 4) -> str:
    return f"{value:+.{digits}f}"


def dloss_text(p: Paired) -> str:
    """``+0.0040 nats/token (95 %: +0.0010 – +0.0070)``, or without the interval (one window)."""
    ci = p.ci95
    inside = f" (95 %: {_signed(ci[0])} – {_signed(ci[1])})" if ci is not None else " (one window: no interval)"
    return f"{_signed(p.mean)} nats/token{inside}"


def headline(row: StrategyRow, base_dtype: str) -> str:
    """One line that answers the question, e.g. ``fp8: 4.0× the context of the default
    float32 cache in the same KV memory (1.0 KiB/token), decode +12 % at 1,024, Δloss
    +0.0040 nats/token (95 %: …) at 1,024``."""
    parts = []
    ratio = row.context_ratio
    if ratio is not None and row.kv_per_token is not None and row.host is None:  # offload: the same bytes, elsewhere
        parts.append(f"{ratio:.1f}× the context of the default {base_dtype} cache in the same KV memory "
                     f"({row.kv_per_token:,.0f} B/token at {row.kv_depth:,})")
    if row.host is not None:
        depth, host, whole = row.host
        parts.append(f"{fmt_bytes(host)} of its {fmt_bytes(whole)} KV cache in host memory at {depth:,} "
                     "(device memory freed)")
        if row.traffic is not None:
            parts.append(f"{fmt_bytes(row.traffic)} moved host↔device per token at {depth:,}")
    if row.fits is not None:
        parts.append(f"fits {row.fits:,} tokens here")
    if row.decode:
        depth, change = row.decode[-1]
        parts.append(f"decode {change * 100:+.0f} % at {depth:,}")
    if row.dloss:
        context, paired = row.dloss[-1]
        parts.append(f"Δloss {dloss_text(paired)} at {context:,}")
    elif row.loss_note:
        parts.append(row.loss_note)
    if row.found:
        n, found, trials = row.found[-1]
        parts.append(f"retrieval {found}/{trials} at {n:,}")
    return f"{row.strategy}: " + (", ".join(parts) if parts else "nothing measured to compare")


COLUMNS = ("strategy", "length", "decode vs default", "Δloss vs default (nats/token, paired 95 %)", "retrieval")


def per_length(row: StrategyRow) -> list[tuple[str, ...]]:
    """Cells of one strategy per length (the columns of :data:`COLUMNS`), as text."""
    decode = dict(row.decode)
    dloss = dict(row.dloss)
    found = {n: (f, t) for n, f, t in row.found}
    out: list[tuple[str, ...]] = []
    for n in sorted(set(decode) | set(dloss) | set(found)):
        out.append((row.strategy, f"{n:,}", f"{decode[n] * 100:+.1f} %" if n in decode else "-",
                    dloss_text(dloss[n]) if n in dloss else "-",
                    f"{found[n][0]}/{found[n][1]}" if n in found else "-"))
    return out


def summary_lines(runs: Sequence[RunResult]) -> list[str]:
    """The headline per strategy (empty when no run differs from another by its cache only)."""
    return [headline(row, runs[row.baseline].header.settings.dtype) for row in strategies(runs)]


def section(runs: Sequence[RunResult]) -> dict[str, object] | None:
    """The HTML report's KV section (plain strings: the template escapes them), or ``None``."""
    rows = strategies(runs)
    if not rows:
        return None
    return {"lines": summary_lines(runs), "columns": COLUMNS, "rows": [c for row in rows for c in per_length(row)]}


def markdown(runs: Sequence[RunResult], escape: Callable[[str], str]) -> list[str]:
    """The Markdown summary's KV section (empty when no run differs by its cache only)."""
    rows = strategies(runs)
    if not rows:
        return []
    lines = ["**KV-cache strategies** (against the default cache of the same configuration; bytes from the cache's "
             "own storage; Δloss paired over the same windows)", ""]
    lines += [f"- {escape(line)}" for line in summary_lines(runs)] + [""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(escape(c) for c in cells) + " |" for row in rows for cells in per_length(row)]
    return lines + [""]
