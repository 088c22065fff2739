"""What ``ctxscope sweep --quality`` prints: a line per loss point and needle trial while
it runs (stderr), then the loss, needle and trade-off tables and the
*claimed · fits · effective* line (stdout)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ctxscope.core.quality.effective import by_length, effective_of, loss_rows, needle_grid, pool, savings
from ctxscope.core.quality.records import LossPoint, QualityPoint
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
    if item.status != "ok":
        return f"  needle  L={item.length:<7d} {where}: {item.status}: {item.error}"
    verdict = "found" if item.found else f"missed (said {item.answer!r})"
    return f"  needle  L={item.length:<7d} {where:11s} seed {item.seed}: {verdict}, log p(key) {item.key_logprob:.2f}"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


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
    rows = loss_rows(quality.loss)
    if rows:
        table = Table(title=f"loss of {settings.get('windows')} × {settings.get('target_tokens')} target tokens of "
                            f"{escape(str(settings.get('text')))} vs context read before them")
        saved = {s.context: s for s in savings(quality.loss)}
        for col in ("context", "status", "nats/token", "95 % interval", "perplexity", "saved vs shortest (95 %)"):
            table.add_column(col, justify="left" if col == "status" else "right")
        for r in rows:
            s = saved.get(r.context)
            table.add_row(f"{r.context:,}", r.status if r.status == "ok" else f"[red]{r.status}[/red]",
                          f"{r.mean:.4f}" if r.mean is not None else escape(r.error or "-"),
                          f"{r.low:.4f} – {r.high:.4f}" if r.low is not None else "-",
                          f"{r.perplexity:.2f}" if r.perplexity else "-",
                          "-" if s is None else f"{s.mean:+.4f}" + (f" ({s.low:+.4f} – {s.high:+.4f})"
                                                                    if s.low is not None else ""))
        table.caption = ("95 % interval: over windows (Student t); saved: the same windows' loss at the shortest "
                         "context minus at this one, paired window by window")
        table.caption_justify = "left"
        console.print(table)
    lengths, depths, cells = needle_grid(quality.needle)
    if lengths:
        table = Table(title="needle retrieval (found / trials) by length and depth; controls at the right")
        table.add_column("length", justify="right")
        for d in depths:
            table.add_column(f"{d:g}%", justify="right")
        table.add_column("all depths", justify="right")
        table.add_column("no key (chance)", justify="right")
        no_key = by_length(quality.needle, "no-key")
        overall = by_length(quality.needle)
        for n in lengths:
            chance = no_key.get(n)
            table.add_row(f"{n:,}", *(f"{cells[(n, d)].found}/{cells[(n, d)].n}" for d in depths),
                          _pct(overall[n].rate), f"{chance.found}/{chance.n}" if chance else "-")
        console.print(table)
        adjacent = pool([t for t in quality.needle if t.kind == "adjacent"])
        console.print(f"control, key right before the question (no haystack): {adjacent.found}/{adjacent.n} found, "
                      f"mean log p(key) {adjacent.logprob:.2f}" if adjacent.n else "control: not measured")
    tradeoff_table(run, console)
    console.print(effective_of(quality, settings).line())


def tradeoff_table(run: RunResult, console: Console) -> None:
    from ctxscope.report.tradeoff import tradeoff

    result = tradeoff(run)
    if not any(r.loss is not None or r.retrieval is not None for r in result.rows):
        return
    table = Table(title="trade-off: cost beside benefit per length",
                  caption="saved/2×: loss saved per doubling since the previous length (nats/token); prefill/nat: "
                          "extra prefill time per nat/token saved (as the HTML report shows it)", caption_justify="left")
    for col in ("length", "prefill", "decode", "KV", "peak", "loss", "found", "saved/2×", "prefill/nat"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in result.rows:
        per_nat = "-" if r.ms_per_nat is None else "no saving" if r.ms_per_nat == float("inf") else fmt_ms(r.ms_per_nat)
        table.add_row(f"{r.length:,}", fmt_ms(r.prefill_ms) if r.prefill_ms is not None else "-",
                      fmt_ms(r.decode_ms) if r.decode_ms is not None else "-", fmt_bytes(r.kv_bytes),
                      fmt_bytes(r.peak_bytes), f"{r.loss:.4f}" if r.loss is not None else "-", _pct(r.retrieval),
                      f"{r.loss_saved_per_doubling:+.4f}" if r.loss_saved_per_doubling is not None else "-", per_nat)
    console.print(table)
    console.print(result.knee_text())


def print_live(event: Any, quiet: bool) -> None:
    if not quiet and isinstance(event, QualityPoint):
        Console(stderr=True, highlight=False).print(escape(live_line(event)))
