"""The KV-strategy view in the terminal: one headline per strategy, then per length its
decode cost, Δloss against the default cache (paired over the same windows) and retrieval."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ctxscope.core.results import RunResult


def kv_tables(runs: Sequence[RunResult]) -> None:
    """Print the view when some runs differ from a default-cache run by their cache only."""
    from ctxscope.report.kv_view import COLUMNS, per_length, strategies, summary_lines

    rows = strategies(runs)
    if not rows:
        return
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    for line in summary_lines(runs):
        console.print(f"[cyan]KV strategy:[/cyan] {escape(line)}")
    table = Table(title="KV strategies against the default cache of the same configuration")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for row in rows:
        for cells in per_length(row):
            table.add_row(*(escape(c) for c in cells))
    console.print(table)
    console.print("decode: median per-token latency at that depth against the default cache's; Δloss: this "
                  "strategy's loss minus the default cache's on the same target windows, paired window by window; "
                  "KV bytes counted from each cache's own storage (quantized tensors, scales, residual window)")
