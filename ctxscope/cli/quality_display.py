"""What ``ctxscope sweep --quality`` prints: a line per loss point and needle trial while
it runs (stderr), then the loss table with each step's verdict, a needle table per
task with Wilson intervals and its controls, the trade-off table and the
*claimed · fits · effective* line (stdout)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ctxscope.core.quality.effective import Cell, by_length, effective_of, loss_rows, needle_grid, pool, savings, tasks_of
from ctxscope.core.quality.records import LossPoint, QualityPoint
from ctxscope.core.quality.texts import MEMORISED_NOTE
from ctxscope.core.quality.verdicts import steps
from ctxscope.core.results import RunResult
from ctxscope.report.fmt import fmt_bytes, fmt_ms


def live_line(event: QualityPoint) -> str:
    """One line for a quality record as it arrives."""
    item = event.item
    if isinstance(item, LossPoint):
        if item.status != "ok":
            return f"  loss    C={item.context:<7d} {item.status}: {item.error}"
        row = loss_rows([item])[0]
        return f"  loss    C={item.context:<7d} {row.mean:.4f} nats/token (ppl {row.perplexity:.2f}, {row.n} windows)"
    where = f"depth {item.depth:g}%" if item.depth is not None else item.kind
    task = "" if item.task == "single" else f"{item.task:10s} "
    if item.status != "ok":
        return f"  needle  L={item.length:<7d} {task}{where}: {item.status}: {item.error}"
    if item.task == "single":
        verdict = "found" if item.found else f"missed (said {item.answer!r})"
        score = f"log p(key) {item.key_logprob:.2f}" if item.key_logprob is not None else ""
    else:
        verdict = ("false retrieval" if item.false_hits else "no false retrieval") if not item.expected else \
            "found" if item.found else "missed"
        score = (f"recall {item.recall:.0%}, " if item.recall is not None else "") + \
            f"{item.false_hits or 0} distractor(s), said {(item.answer or '').strip()[:60]!r}"
    return f"  needle  L={item.length:<7d} {task}{where:11s} seed {item.seed}: {verdict}, {score}"


def rate_text(cell: Cell) -> str:
    """``93% (70–99%)``: the rate with its 95 % Wilson interval."""
    ci = cell.interval
    return "-" if ci is None or cell.rate is None else f"{cell.rate:.0%} ({ci[0]:.0%}–{ci[1]:.0%})"


def quality_tables(run: RunResult, console: Console | None = None) -> None:
    """Print the run's quality results (nothing when it has none)."""
    settings = run.header.settings.quality
    if settings is None:
        return
    console = console or Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    if settings.get("note"):
        console.print(f"Quality: {escape(settings['note'])}")
        return
    quality = run.quality
    if quality is None:
        return
    _loss_table(quality.loss, settings, console)
    for task in tasks_of(quality.needle):
        _needle_table(run, task, console)
    adjacent = [(task, pool([t for t in quality.needle if t.kind == "adjacent" and t.task == task]))
                for task in tasks_of(quality.needle)]
    if any(c.n for _, c in adjacent):
        console.print("control, the needles right before the question (no haystack: can the model do the task at "
                      "all): " + ", ".join(f"{task} {c.found}/{c.n}" for task, c in adjacent if c.n))
    if settings.get("text_shipped"):
        console.print(f"note: {escape(str(settings.get('text')))} is {MEMORISED_NOTE}")
    tradeoff_table(run, console)
    eff = effective_of(quality, settings)
    console.print(escape(eff.line()))
    for task, verdict in eff.tasks:
        console.print(f"  {escape(verdict.text)}")


def _loss_table(loss: Any, settings: dict[str, Any], console: Console) -> None:
    rows = loss_rows(loss)
    if not rows:
        return
    table = Table(title=f"loss of {settings.get('windows')} × {settings.get('target_tokens')} target tokens of "
                        f"{escape(str(settings.get('text')))} vs context read before them (C)")
    saved = {s.context: s for s in savings(loss)}
    step = {s.end: s for s in steps(loss, float(settings.get("epsilon", 0.01)))}
    for col in ("C", "status", "nats/token", "95 % interval", "perplexity", "saved vs shortest (95 %)",
                "step per doubling (95 %)", "step"):
        table.add_column(col, justify="left" if col in ("status", "step") else "right")
    for r in rows:
        s, st = saved.get(r.context), step.get(r.context)
        ci = st.saving.ci95 if st else None
        table.add_row(f"{r.context:,}", r.status if r.status == "ok" else f"[red]{r.status}[/red]",
                      f"{r.mean:.4f}" if r.mean is not None else escape(r.error or "-"),
                      f"{r.low:.4f} – {r.high:.4f}" if r.low is not None else "-",
                      f"{r.perplexity:.2f}" if r.perplexity else "-",
                      "-" if s is None else f"{s.mean:+.4f}" + (f" ({s.low:+.4f} – {s.high:+.4f})"
                                                                if s.low is not None else ""),
                      "-" if st is None else f"{st.saving.mean:+.4f}" + (f" ({ci[0]:+.4f} – {ci[1]:+.4f})"
                                                                         if ci else ""),
                      "-" if st is None else st.verdict)
    table.caption = (f"C: the context before each window (target j of the K reads C + j tokens: on average "
                     f"C + {(int(settings.get('target_tokens') or 1) - 1) / 2:g}); 95 % interval: over windows "
                     "(Student t); saved: the same windows' loss at the shortest context minus at this one, paired "
                     f"window by window; step: falling / rising beyond ε = {settings.get('epsilon', 0.01)} by its 95 % "
                     "interval, flat (within ±ε by TOST) or unresolved")
    table.caption_justify = "left"
    console.print(table)


def _needle_table(run: RunResult, task: str, console: Console) -> None:
    assert run.quality is not None
    trials = run.quality.needle
    lengths, depths, cells = needle_grid(trials, task)
    if not lengths:
        return
    table = Table(title=f"needle retrieval — {task}: found / trials by length and depth, all depths with the 95 % "
                        "Wilson interval; controls at the right")
    table.add_column("length", justify="right")
    for d in depths:
        table.add_column(f"{d:g}%", justify="right")
    table.add_column("all depths", justify="right")
    controls: list[tuple[str, dict[int, Cell], str]] = []
    if task == "single":
        controls.append(("no key (chance)", by_length(trials, "no-key"), "found"))
    if task == "multikey":
        controls.append(("distractor returned", by_length(trials, task=task), "false"))
        controls.append(("wrong key: value returned", by_length(trials, "wrong-key"), "false"))
    for name, _, _ in controls:
        table.add_column(name, justify="right")
    overall = by_length(trials, task=task)
    for n in lengths:
        extra = []
        for _, cells_of, field in controls:
            c = cells_of.get(n)
            extra.append("-" if c is None else f"{c.found if field == 'found' else c.false}/{c.n}")
        table.add_row(f"{n:,}", *(f"{cells[(n, d)].found}/{cells[(n, d)].n}" for d in depths),
                      rate_text(overall[n]), *extra)
    console.print(table)


def tradeoff_table(run: RunResult, console: Console) -> None:
    from ctxscope.report.tradeoff import tradeoff

    result = tradeoff(run)
    if not any(r.loss is not None or r.retrieval is not None for r in result.rows):
        return
    table = Table(title="trade-off: cost beside benefit per length",
                  caption="prefill: median (p10–p90); saved/2×: loss saved per doubling since the previous length, "
                          "paired (nats/token, 95 %); prefill/nat: extra prefill time per nat/token saved (n.s.: the "
                          "saving is not significant; as the HTML report shows it)", caption_justify="left")
    for col in ("length", "prefill", "decode", "KV", "peak", "loss", "found (95 %)", "saved/2×", "prefill/nat"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in result.rows:
        per_nat = r.per_nat_text
        prefill = "-" if r.prefill_ms is None else fmt_ms(r.prefill_ms) + (
            f" ({fmt_ms(r.prefill_p10)}–{fmt_ms(r.prefill_p90)})" if r.prefill_p10 is not None
            and r.prefill_p90 is not None else "")
        found = "-" if r.retrieval is None else f"{r.retrieval:.0%}" + (
            f" ({r.retrieval_low:.0%}–{r.retrieval_high:.0%})" if r.retrieval_low is not None
            and r.retrieval_high is not None else "")
        saved = "-" if r.loss_saved_per_doubling is None else f"{r.loss_saved_per_doubling:+.4f}" + (
            f" ({r.saved_low:+.4f} – {r.saved_high:+.4f})" if r.saved_low is not None and r.saved_high is not None
            else "")
        table.add_row(f"{r.length:,}", prefill, fmt_ms(r.decode_ms) if r.decode_ms is not None else "-",
                      fmt_bytes(r.kv_bytes), fmt_bytes(r.peak_bytes), f"{r.loss:.4f}" if r.loss is not None else "-",
                      found, saved, per_nat)
    console.print(table)
    console.print(escape(result.knee_text()))


def print_live(event: Any, quiet: bool) -> None:
    if not quiet and isinstance(event, QualityPoint):
        Console(stderr=True, highlight=False).print(escape(live_line(event)))
