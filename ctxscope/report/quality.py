"""What context buys, in reports: the quality section of HTML and Markdown reports and
the quality columns of CSV, for one run or a comparison (overlays and ratios)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ctxscope.core.quality.effective import Effective, by_length, effective_of, loss_rows, pool, savings
from ctxscope.core.results import RunResult
from ctxscope.report.fmt import fmt_bytes, fmt_ms
from ctxscope.report.tradeoff import Tradeoff, tradeoff

CSV_COLUMNS = ("loss_nats_per_token", "loss_ci95_low", "loss_ci95_high", "needle_retrieval", "needle_no_key_rate")


def has_quality(run: RunResult) -> bool:
    return run.header.settings.quality is not None


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _f(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def differences(runs: Sequence[RunResult]) -> list[str]:
    """Why quality curves of these runs may not compare: other texts or windows."""
    settings = [s for r in runs if (s := r.header.settings.quality) is not None and not s.get("note")]
    notes = []
    if len({s.get("text_sha256") for s in settings}) > 1:
        notes.append("quality: the runs read different texts, so their losses are of different tokens")
    elif len({(tuple(s.get("window_starts", [])), s.get("target_tokens")) for s in settings}) > 1:
        notes.append("quality: the loss windows differ between runs (other lengths asked of the text, or other "
                     "--quality-targets/--quality-windows): compare the curves' shapes, not their values")
    return notes


def csv_values(run: RunResult) -> dict[int, dict[str, object]]:
    """Quality columns per length (the same on each mode's row of that length)."""
    if run.quality is None:
        return {}
    out: dict[int, dict[str, object]] = {}
    for row in loss_rows(run.quality.loss):
        if row.mean is not None:
            out.setdefault(row.context, {}).update(loss_nats_per_token=row.mean, loss_ci95_low=row.low or "",
                                                   loss_ci95_high=row.high or "")
    for length, cell in by_length(run.quality.needle).items():
        out.setdefault(length, {})["needle_retrieval"] = "" if cell.rate is None else cell.rate
    for length, cell in by_length(run.quality.needle, "no-key").items():
        out.setdefault(length, {})["needle_no_key_rate"] = "" if cell.rate is None else cell.rate
    return out


def _tradeoff_rows(result: Tradeoff) -> list[dict[str, object]]:
    rows = []
    for r in result.rows:
        per_nat = "-" if r.ms_per_nat is None else "no saving" if math.isinf(r.ms_per_nat) else fmt_ms(r.ms_per_nat)
        rows.append({"length": f"{r.length:,}", "prefill": fmt_ms(r.prefill_ms) if r.prefill_ms is not None else "-",
                     "decode": fmt_ms(r.decode_ms) if r.decode_ms is not None else "-", "kv": fmt_bytes(r.kv_bytes),
                     "peak": fmt_bytes(r.peak_bytes), "loss": _f(r.loss), "retrieval": _pct(r.retrieval),
                     "saved": f"{r.loss_saved_per_doubling:+.4f}" if r.loss_saved_per_doubling is not None else "-",
                     "per_nat": per_nat, "knee": r.length == result.knee})
    return rows


def section(runs: Sequence[RunResult], labels: Sequence[str], colours: Sequence[str], baseline: int = 0) -> Any:
    """The HTML report's quality section (``None`` when no run measured quality)."""
    from markupsafe import Markup

    from ctxscope.report.quality_charts import loss_svg, needle_svg, tradeoff_svg

    chosen = [i for i, r in enumerate(runs) if has_quality(r)]
    if not chosen:
        return None
    results = {i: q for i in chosen if (q := runs[i].quality) is not None}
    effs: dict[int, Effective] = {i: effective_of(q, runs[i].header.settings.quality) for i, q in results.items()}
    rows = {i: loss_rows(q.loss) for i, q in results.items()}
    loss_chart = loss_svg([(labels[i], colours[i], rows[i], effs[i]) for i in effs],
                          title="loss of the same target tokens vs context read before them (95% band)")
    contexts = sorted({r.context for i in rows for r in rows[i]})
    base = baseline if baseline in rows else (min(rows) if rows else None)
    saved = {i: {s.context: s for s in savings(q.loss)} for i, q in results.items()}
    loss_table = []
    for c in contexts:
        cells = []
        for i in rows:
            row = next((r for r in rows[i] if r.context == c), None)
            s = saved[i].get(c)
            ref = next((r for r in rows[base] if r.context == c), None) if base is not None else None
            delta = (row.mean - ref.mean) if row and ref and row.mean is not None and ref.mean is not None else None
            cells.append({"mean": _f(row.mean) if row and row.mean is not None else (row.status if row else "-"),
                          "ci": f"{_f(row.low)} – {_f(row.high)}" if row and row.low is not None else "-",
                          "ppl": f"{row.perplexity:.2f}" if row and row.perplexity else "-",
                          "ratio": f"×{math.exp(delta):.3f}" if delta is not None and i != base else "",
                          "saved": "-" if s is None else f"{s.mean:+.4f}" + (
                              f" ({s.low:+.4f} – {s.high:+.4f})" if s.low is not None else ""),
                          "failed": bool(row and row.status in ("oom", "error"))})
        loss_table.append({"context": f"{c:,}", "cells": cells})
    per_run = []
    for i in chosen:
        run, settings = runs[i], runs[i].header.settings.quality or {}
        entry: dict[str, Any] = {"label": labels[i], "colour": colours[i], "note": settings.get("note")}
        if run.quality is not None and not settings.get("note"):
            trials = run.quality.needle
            result = tradeoff(run)
            adjacent = pool([t for t in trials if t.kind == "adjacent"])
            no_key = by_length(trials, "no-key")
            entry.update(
                effective=effs[i].line(), knee=result.knee_text(),
                text=f"{settings.get('text')} ({settings.get('text_tokens') or 0:,} tokens"
                     + (f"; {settings['text_source']})" if settings.get("text_source") else ")"),
                windows=f"{settings.get('windows')} windows of {settings.get('target_tokens')} target tokens at "
                        f"token {', '.join(f'{s:,}' for s in settings.get('window_starts', []))}",
                needle=Markup(needle_svg(trials, title=f"needle retrieval — {labels[i]}") or ""),
                tradeoff=Markup(tradeoff_svg(result, effs[i], title=f"cost and benefit — {labels[i]}",
                                             bands=rows.get(i, ())) or ""),
                tradeoff_rows=_tradeoff_rows(result),
                retrieval=[{"length": f"{n:,}", "rate": _pct(c.rate), "trials": c.n, "logprob": _f(c.logprob, 2),
                            "chance": _pct(no_key[n].rate) if n in no_key else "-",
                            "chance_logprob": _f(no_key[n].logprob, 2) if n in no_key else "-",
                            "failed": c.failed} for n, c in by_length(trials).items()],
                adjacent=f"{adjacent.found}/{adjacent.n} found, mean log p(key) {_f(adjacent.logprob, 2)}"
                if adjacent.n else "not measured")
        per_run.append(entry)
    return {"loss_chart": Markup(loss_chart or ""), "loss_table": loss_table,
            "loss_labels": [{"label": labels[i], "colour": colours[i]} for i in rows], "runs": per_run,
            "base_label": labels[base] if base is not None else "", "compared": len(rows) > 1,
            "differences": differences(runs)}


def markdown(runs: Sequence[RunResult], labels: Sequence[str], escape: Any) -> list[str]:
    """Markdown lines of the quality results (empty when no run measured quality)."""
    lines: list[str] = []
    for run, label in zip(runs, labels):
        settings = run.header.settings.quality
        if settings is None:
            continue
        lines += [f"**what context buys** — {escape(label)}", ""]
        if settings.get("note") or run.quality is None:
            lines += [f"> {escape(settings.get('note') or 'no quality results')}", ""]
            continue
        rows = loss_rows(run.quality.loss)
        if rows:
            saved = {s.context: s for s in savings(run.quality.loss)}
            lines += [f"loss of {settings.get('windows')} × {settings.get('target_tokens')} target tokens of "
                      f"{escape(settings.get('text'))} vs context (nats/token, 95 % interval over windows; saved: "
                      "vs the shortest context, paired by window)", "",
                      "| context | loss | 95 % interval | perplexity | saved (95 %) |", "|---:|---:|---:|---:|---:|"]
            lines += [f"| {r.context:,} | {_f(r.mean) if r.mean is not None else '**' + escape(r.status) + '**'} | "
                      f"{_f(r.low)} – {_f(r.high)} | {f'{r.perplexity:.2f}' if r.perplexity else '-'} | "
                      + (f"{saved[r.context].mean:+.4f} ({_f(saved[r.context].low)} – {_f(saved[r.context].high)})"
                         if r.context in saved else "-") + " |" for r in rows]
            lines.append("")
        retrieval = by_length(run.quality.needle)
        if retrieval:
            no_key = by_length(run.quality.needle, "no-key")
            lines += ["| length | key retrieved (all depths) | mean log p(key) | no key planted (chance) |",
                      "|---:|---:|---:|---:|"]
            lines += [f"| {n:,} | {c.found}/{c.n} | {_f(c.logprob, 2)} | "
                      f"{f'{no_key[n].found}/{no_key[n].n}' if n in no_key else '-'} |" for n, c in retrieval.items()]
            adjacent = pool([t for t in run.quality.needle if t.kind == "adjacent"])
            lines += ["", f"Control, key right before the question: {adjacent.found}/{adjacent.n} found.", ""]
        lines += [escape(effective_of(run.quality, settings).line()), "", escape(tradeoff(run).knee_text()), ""]
    return lines
