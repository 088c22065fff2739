"""What context buys, in Markdown reports: the loss table with each step's verdict, the
retrieval table per task with Wilson intervals and the controls, the effective line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ctxscope.core.quality.effective import by_length, effective_of, loss_rows, pool, savings, tasks_of
from ctxscope.core.quality.texts import MEMORISED_NOTE
from ctxscope.core.quality.verdicts import steps
from ctxscope.core.results import RunResult
from ctxscope.report.quality import _f, rate
from ctxscope.report.tradeoff import tradeoff


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
            step = {s.end: s for s in steps(run.quality.loss, float(settings.get("epsilon", 0.01)))}
            lines += [f"loss of {settings.get('windows')} × {settings.get('target_tokens')} target tokens of "
                      f"{escape(settings.get('text'))} vs the context C before them (nats/token, 95 % interval over "
                      "windows; saved: vs the shortest context, paired by window; step: per doubling, paired, its "
                      "verdict)", "",
                      "| C | loss | 95 % interval | perplexity | saved (95 %) | step (95 %) |",
                      "|---:|---:|---:|---:|---:|---:|"]
            for r in rows:
                s, st = saved.get(r.context), step.get(r.context)
                ci = st.saving.ci95 if st else None
                lines.append(f"| {r.context:,} | {_f(r.mean) if r.mean is not None else '**' + escape(r.status) + '**'} | "
                             f"{_f(r.low)} – {_f(r.high)} | {f'{r.perplexity:.2f}' if r.perplexity else '-'} | "
                             + (f"{s.mean:+.4f} ({_f(s.low)} – {_f(s.high)})" if s else "-") + " | "
                             + (f"{st.saving.mean:+.4f}" + (f" ({ci[0]:+.4f} – {ci[1]:+.4f})" if ci else "")
                                + f" {st.verdict}" if st else "-") + " |")
            lines.append("")
        trials = run.quality.needle
        tasks = tasks_of(trials)
        if tasks:
            no_key, wrong = by_length(trials, "no-key"), by_length(trials, "wrong-key")
            per = {t: by_length(trials, task=t) for t in tasks}
            head = ["length", *(f"{t} (95 %)" for t in tasks)] + (["no key planted"] if no_key else []) + (
                ["wrong key: value returned"] if wrong else [])
            lines += ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
            for n in sorted({t.length for t in trials if t.kind == "grid"}):
                cells = [rate(per[t].get(n)) for t in tasks]
                if no_key:
                    cells.append(f"{no_key[n].found}/{no_key[n].n}" if n in no_key else "-")
                if wrong:
                    cells.append(f"{wrong[n].false}/{wrong[n].n}" if n in wrong else "-")
                lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
            adjacent = [(t, c) for t in tasks if (c := pool([x for x in trials if x.kind == "adjacent" and x.task == t])).n]
            lines += [""] + (["Control, key right before the question: "
                              + ", ".join(f"{t} {c.found}/{c.n} found" for t, c in adjacent) + ".", ""] if adjacent else [])
        if settings.get("text_shipped"):
            lines += [f"Note: {escape(str(settings.get('text')))} is {escape(MEMORISED_NOTE)}.", ""]
        eff = effective_of(run.quality, settings)
        lines += [escape(eff.line()), ""] + [f"- {escape(v.text)}" for _, v in eff.tasks]
        lines += ([""] if eff.tasks else []) + [escape(tradeoff(run).knee_text()), ""]
    return lines
