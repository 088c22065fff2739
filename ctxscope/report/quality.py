"""What context buys, in reports: the quality section of HTML reports and the quality
columns of CSV, for one run or a comparison (overlays and ratios). Every rate with its
Wilson interval, every loss step with its paired interval and verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ctxscope.core.quality.effective import Cell, Effective, by_length, effective_of, loss_rows, pool, savings, tasks_of
from ctxscope.core.quality.records import TASKS
from ctxscope.core.quality.texts import MEMORISED_NOTE
from ctxscope.core.quality.verdicts import steps
from ctxscope.core.results import RunResult
from ctxscope.report.fmt import fmt_bytes, fmt_ms
from ctxscope.report.tradeoff import Tradeoff, tradeoff

CSV_COLUMNS = ("loss_nats_per_token", "loss_ci95_low", "loss_ci95_high", "needle_retrieval", "needle_no_key_rate",
               # added with the RULER-style tasks: the single task's (or every task pooled) Wilson interval,
               # the other tasks' rates and the wrong-key control's false-retrieval rate
               "needle_retrieval_ci95_low", "needle_retrieval_ci95_high",
               *(f"needle_{t}_rate" for t in TASKS if t != "single"), "needle_wrong_key_false_rate")


def has_quality(run: RunResult) -> bool:
    return run.header.settings.quality is not None


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _f(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def rate(cell: Cell | None) -> str:
    """``14/15 · 93% (70–99%)``: counts, rate and its 95 % Wilson interval."""
    if cell is None or not cell.n:
        return "-" if cell is None else f"0 run ({cell.failed} {cell.failed_as})"
    ci = cell.interval
    return f"{cell.found}/{cell.n} · {_pct(cell.rate)}" + ("" if ci is None else f" ({ci[0]:.0%}–{ci[1]:.0%})")


def differences(runs: Sequence[RunResult]) -> list[str]:
    """Why quality curves of these runs may not compare: other texts or windows."""
    settings = [s for r in runs if (s := r.header.settings.quality) is not None and not s.get("note")]
    notes = []
    if len({s.get("text_sha256") for s in settings}) > 1:
        notes.append("quality: the runs read different texts, so their losses are of different tokens")
    elif len({(tuple(s.get("window_starts", [])), s.get("target_tokens")) for s in settings}) > 1:
        notes.append("quality: the loss windows differ between runs (other lengths asked of the text, or other "
                     "--quality-targets/--quality-windows): compare the curves' shapes, not their values")
    if len({s.get("bos") for s in settings}) > 1:
        notes.append("quality: some runs put a BOS token before each window and prompt, others not")
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
    trials = run.quality.needle
    single = "single" if "single" in tasks_of(trials) else None
    for length, cell in by_length(trials, task=single).items():
        ci = cell.interval
        out.setdefault(length, {}).update(needle_retrieval="" if cell.rate is None else cell.rate,
                                          needle_retrieval_ci95_low=ci[0] if ci else "",
                                          needle_retrieval_ci95_high=ci[1] if ci else "")
    for task in tasks_of(trials):
        if task != "single":
            for length, cell in by_length(trials, task=task).items():
                out.setdefault(length, {})[f"needle_{task}_rate"] = "" if cell.rate is None else cell.rate
    for length, cell in by_length(trials, "no-key").items():
        out.setdefault(length, {})["needle_no_key_rate"] = "" if cell.rate is None else cell.rate
    for length, cell in by_length(trials, "wrong-key").items():
        out.setdefault(length, {})["needle_wrong_key_false_rate"] = cell.false / cell.n if cell.n else ""
    return out


def _tradeoff_rows(result: Tradeoff) -> list[dict[str, object]]:
    rows = []
    for r in result.rows:
        per_nat = r.per_nat_text
        spread = (f" ({fmt_ms(r.prefill_p10)}–{fmt_ms(r.prefill_p90)})"
                  if r.prefill_p10 is not None and r.prefill_p90 is not None else "")
        found = "-" if r.retrieval is None else _pct(r.retrieval) + (
            f" ({r.retrieval_low:.0%}–{r.retrieval_high:.0%})" if r.retrieval_low is not None
            and r.retrieval_high is not None else "")
        saved = "-" if r.loss_saved_per_doubling is None else f"{r.loss_saved_per_doubling:+.4f}" + (
            f" ({r.saved_low:+.4f} – {r.saved_high:+.4f})" if r.saved_low is not None and r.saved_high is not None
            else "")
        rows.append({"length": f"{r.length:,}", "prefill": (fmt_ms(r.prefill_ms) + spread) if r.prefill_ms is not None
                     else "-", "decode": fmt_ms(r.decode_ms) if r.decode_ms is not None else "-",
                     "kv": fmt_bytes(r.kv_bytes), "peak": fmt_bytes(r.peak_bytes), "loss": _f(r.loss),
                     "retrieval": found, "saved": saved, "per_nat": per_nat, "knee": r.length == result.knee})
    return rows


def _loss_table(results: dict[int, Any], settings: dict[int, dict[str, Any]], base: int | None) -> list[Any]:
    rows = {i: loss_rows(q.loss) for i, q in results.items()}
    saved = {i: {s.context: s for s in savings(q.loss)} for i, q in results.items()}
    stepped = {i: {s.end: s for s in steps(q.loss, float(settings[i].get("epsilon", 0.01)))} for i, q in results.items()}
    table = []
    for c in sorted({r.context for i in rows for r in rows[i]}):
        cells = []
        for i in rows:
            row = next((r for r in rows[i] if r.context == c), None)
            s, st = saved[i].get(c), stepped[i].get(c)
            ref = next((r for r in rows[base] if r.context == c), None) if base is not None else None
            delta = (row.mean - ref.mean) if row and ref and row.mean is not None and ref.mean is not None else None
            ci = st.saving.ci95 if st else None
            cells.append({"mean": _f(row.mean) if row and row.mean is not None else (row.status if row else "-"),
                          "ci": f"{_f(row.low)} – {_f(row.high)}" if row and row.low is not None else "-",
                          "ppl": f"{row.perplexity:.2f}" if row and row.perplexity else "-",
                          "ratio": f"×{math.exp(delta):.3f}" if delta is not None and i != base else "",
                          "saved": "-" if s is None else f"{s.mean:+.4f}" + (
                              f" ({s.low:+.4f} – {s.high:+.4f})" if s.low is not None else ""),
                          "step": "-" if st is None else f"{st.saving.mean:+.4f}" + (
                              f" ({ci[0]:+.4f} – {ci[1]:+.4f})" if ci else "") + f" {st.verdict}",
                          "failed": bool(row and row.status in ("oom", "error"))})
        table.append({"context": f"{c:,}", "cells": cells})
    return table


def _tasks_table(trials: Any) -> dict[str, Any]:
    tasks = tasks_of(trials)
    lengths = sorted({t.length for t in trials if t.kind == "grid"})
    per = {task: by_length(trials, task=task) for task in tasks}
    overall = by_length(trials)
    wrong = by_length(trials, "wrong-key")
    return {"tasks": tasks, "average": len(tasks) > 1, "wrong_key": bool(wrong),
            "rows": [{"length": f"{n:,}", "cells": [rate(per[t].get(n)) for t in tasks],
                      "average": rate(overall.get(n)),
                      "wrong": f"{wrong[n].false}/{wrong[n].n}" if n in wrong else "-"} for n in lengths],
            "adjacent": ", ".join(f"{t} {c.found}/{c.n}" for t in tasks
                                  if (c := pool([x for x in trials if x.kind == "adjacent" and x.task == t])).n)}


def section(runs: Sequence[RunResult], labels: Sequence[str], colours: Sequence[str], baseline: int = 0) -> Any:
    """The HTML report's quality section (``None`` when no run measured quality)."""
    from markupsafe import Markup

    from ctxscope.report.quality_charts import loss_svg, needle_svg, tradeoff_svg

    chosen = [i for i, r in enumerate(runs) if has_quality(r)]
    if not chosen:
        return None
    results = {i: q for i in chosen if (q := runs[i].quality) is not None}
    settings = {i: runs[i].header.settings.quality or {} for i in chosen}
    effs: dict[int, Effective] = {i: effective_of(q, settings[i]) for i, q in results.items()}
    rows = {i: loss_rows(q.loss) for i, q in results.items()}
    targets = next((int(settings[i].get("target_tokens") or 1) for i in results), 1)
    loss_chart = loss_svg([(labels[i], colours[i], rows[i], effs[i]) for i in effs], target_tokens=targets,
                          title="loss of the same target tokens vs context read before them (95% band)")
    base = baseline if baseline in rows else (min(rows) if rows else None)
    per_run = []
    for i in chosen:
        run, s = runs[i], settings[i]
        entry: dict[str, Any] = {"label": labels[i], "colour": colours[i], "note": s.get("note")}
        if run.quality is not None and not s.get("note"):
            trials = run.quality.needle
            result = tradeoff(run)
            no_key = by_length(trials, "no-key")
            charts = [Markup(svg) for task in tasks_of(trials)
                      if (svg := needle_svg(trials, task=task, title=f"needle retrieval, {task} — {labels[i]}"))]
            entry.update(
                effective=effs[i].line(), task_lines=[v.text for _, v in effs[i].tasks], knee=result.knee_text(),
                text=f"{s.get('text')} ({s.get('text_tokens') or 0:,} tokens"
                     + (f"; {s['text_source']})" if s.get("text_source") else ")")
                     + (f"; read as {s['text_encoding']}" if s.get("text_encoding") else "")
                     + ("; a BOS token before each window and prompt" if s.get("bos") is not None else ""),
                memorised=f"{s.get('text')} is {MEMORISED_NOTE}" if s.get("text_shipped") else None,
                windows=f"{s.get('windows')} windows of {s.get('target_tokens')} target tokens at "
                        f"token {', '.join(f'{w:,}' for w in s.get('window_starts', []))}",
                needles=charts,
                tradeoff=Markup(tradeoff_svg(result, effs[i], title=f"cost and benefit — {labels[i]}",
                                             bands=rows.get(i, ())) or ""),
                tradeoff_rows=_tradeoff_rows(result), tasks=_tasks_table(trials),
                retrieval=[{"length": f"{n:,}", "rate": rate(c), "logprob": _f(c.logprob, 2),
                            "chance": rate(no_key.get(n)) if n in no_key else "-",
                            "chance_logprob": _f(no_key[n].logprob, 2) if n in no_key else "-",
                            "failed": c.failed} for n, c in by_length(trials, task="single").items()])
        per_run.append(entry)
    return {"loss_chart": Markup(loss_chart or ""), "loss_table": _loss_table(results, settings, base),
            "loss_labels": [{"label": labels[i], "colour": colours[i]} for i in rows], "runs": per_run,
            "base_label": labels[base] if base is not None else "", "compared": len(rows) > 1,
            "differences": differences(runs), "mean_context": (targets - 1) / 2}
