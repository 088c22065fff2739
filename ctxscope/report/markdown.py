"""A short Markdown summary of one run or a comparison, for a GitHub issue or PR."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

import ctxscope
from ctxscope.core.results import RunResult
from ctxscope.report.compare import Comparison, compare, fmt_ratio, peak_heading, peak_note
from ctxscope.report.fmt import fmt_bytes, fmt_count, fmt_ms
from ctxscope.report.breakdown import markdown_table as breakdown_markdown
from ctxscope.report.kv_view import markdown as kv_markdown
from ctxscope.report.quality_md import markdown as quality_markdown

MAX_ROWS = 12


def md_escape(text: object) -> str:
    """Any text from a run inside Markdown: no HTML, links, emphasis or column breaks.
    Applied to every string that comes from a run file, as HTML autoescapes."""
    out = str(text).replace("\\", "\\\\").replace("\n", " ").replace("\r", " ")
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # "$" too: GitHub renders $…$ as math, and a checkpoint path may hold two of them.
    # Not "(", ")", "#" or "!": with "[" and "]" escaped they cannot form a link or an
    # image, and "#" heads a line only at its start (no string from a run starts one);
    # escaping them showed up as "\(08:11\)" wherever a renderer keeps the backslash.
    return re.sub(r"([|`*_\[\]~$])", r"\\\1", out)


_Row = TypeVar("_Row")


def _shown_rows(rows: list[_Row]) -> list[_Row]:
    if len(rows) <= MAX_ROWS:
        return rows
    step = len(rows) / MAX_ROWS
    keep = sorted({int(i * step) for i in range(MAX_ROWS)} | {len(rows) - 1})
    return [rows[i] for i in keep]


def _runs_table(cmp: Comparison) -> list[str]:
    lines = ["| | run | model | params | device | dtype | attention | batch | longest length that ran |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, run in enumerate(cmp.runs):
        m, s, e = run.header.model, run.header.settings, run.header.environment
        longest = ", ".join(f"{md_escape(mode)} {cmp.max_ok[i][mode]:,}" if cmp.max_ok[i][mode]
                            else f"{md_escape(mode)} none" for mode in cmp.modes)
        device = e.gpu_name or e.cpu
        tag = " (baseline)" if i == cmp.baseline and len(cmp.runs) > 1 else ""
        lines.append(f"| {chr(65 + i) if i < 26 else i + 1} | {md_escape(cmp.labels[i])}{tag} | "
                     f"{md_escape(m.source)}{' (random weights)' if m.random_weights else ''} | {fmt_count(m.params)} | "
                     f"{md_escape(s.device)} ({md_escape(device)}) | {md_escape(s.dtype)} | "
                     f"{md_escape(s.attn_implementation)} | {s.batch_size} | {longest} |")
    return lines


def _mode_table(cmp: Comparison, mode: str) -> list[str]:
    multi = len(cmp.runs) > 1
    peak = peak_heading(cmp.runs)
    head = "| L | " + " | ".join(
        f"{chr(65 + i) if i < 26 else i + 1} median" + (" | ratio" if multi and i != cmp.baseline else "")
        + f" | {chr(65 + i) if i < 26 else i + 1} {peak}" for i in range(len(cmp.runs))) + " |"
    cols = head.count("|") - 1
    lines = [head, "|" + "---:|" * cols]
    for row in _shown_rows(cmp.rows_of(mode)):
        cells = []
        for i, c in enumerate(row.cells):
            median = (fmt_ms(c.median_ms) if c.median_ms is not None else f"**{md_escape(c.status)}**" if c.status
                      else "—")
            cells.append(median)
            if multi and i != cmp.baseline:
                cells.append(fmt_ratio(c.latency_ratio))
            cells.append(fmt_bytes(c.peak_bytes))
        lines.append(f"| {row.length:,} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(runs: Sequence[RunResult], *, baseline: int = 0) -> str:
    """A summary that pastes well into an issue: the runs, then per mode the median
    latency (ratio to the baseline) and peak memory per length."""
    cmp = compare(list(runs), baseline)
    title = (f"ctxscope: {md_escape(cmp.labels[0])}" if len(runs) == 1
             else f"ctxscope: {len(runs)} runs compared (baseline {md_escape(cmp.labels[baseline])})")
    lines = [f"### {title}", "", *_runs_table(cmp), ""]
    for note in cmp.differences:
        lines.append(f"> **Note:** {md_escape(note)}")
    if cmp.differences:
        lines.append("")
    for mode in cmp.modes:
        what = "per-token latency at depth L" if mode == "decode" else "latency per call"
        lines += [f"**{md_escape(mode)}** ({what}; ratio = run ÷ baseline, above 1 is slower)", "",
                  *_mode_table(cmp, mode), ""]
    lines += kv_markdown(cmp.runs, md_escape)
    lines += quality_markdown(cmp.runs, cmp.labels, md_escape)
    for run, label in zip(cmp.runs, cmp.labels):
        table = breakdown_markdown(run)
        if table:
            lines += [f"**where the time goes** — {md_escape(label)}", "", *table, ""]
    lines.append(f"<sub>ctxscope {ctxscope.__version__}; medians of repeated timed calls; "
                 f"{md_escape(peak_note(cmp.runs))}</sub>")
    return "\n".join(lines) + "\n"
