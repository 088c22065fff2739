"""``--cache offload``'s two figures in what users read: the strategy's line (CLI
comparison, HTML, Markdown, the Compare tab all print it), the CSV columns and the CLI
table. Hand-built runs: the strategy itself needs a GPU."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

from rich.console import Console

from ctxscope.cli.display import points_table
from ctxscope.report.html import render_html
from ctxscope.report.kv_view import strategies, summary_lines
from ctxscope.report.markdown import render_markdown
from ctxscope.report.tabular import run_to_csv
from tests.report.test_reports import make_run

GIB = 1024**3


def _offload_run():
    base = make_run("dyn1", lengths=(1024, 4096))
    points = []
    for p in base.points:
        mem = p.memory
        if p.mode == "decode":  # all but one layer's share on the host; every layer moved in and out
            mem = replace(mem, kv_host_bytes=mem.kv_cache_bytes * 11 // 12, kv_traffic_bytes=2 * mem.kv_cache_bytes)
        points.append(replace(p, memory=mem, latency_ms=p.latency_ms if p.mode == "prefill" else
                              type(p.latency_ms).from_samples([s * 3 for s in p.latency_ms.samples])))
    header = replace(base.header, id="off1", settings=replace(base.header.settings, cache="offload"))
    return base, replace(base, header=header, points=tuple(points))


def test_the_offload_line_names_the_host_share_and_the_traffic_per_token() -> None:
    base, off = _offload_run()
    (row,) = strategies([base, off])
    whole = 36_864 * 4096
    assert row.host == (4096, whole * 11 // 12, whole) and row.traffic == 2 * whole
    (line,) = summary_lines([base, off])
    assert line.startswith("offload: ")
    assert "132.0 MiB of its 144.0 MiB KV cache in host memory at 4,096 (device memory freed)" in line
    assert "288.0 MiB moved host↔device per token at 4,096" in line and "decode +200 % at 4,096" in line
    assert line in render_html([base, off]) or line.replace("↔", "&#8596;") in render_html([base, off])
    assert line in render_markdown([base, off])
    assert "the context of the default" not in line  # offload holds the same bytes, elsewhere


def test_csv_and_the_cli_table_carry_the_two_columns_only_where_measured() -> None:
    base, off = _offload_run()
    rows = list(csv.DictReader(io.StringIO(run_to_csv(off))))
    decode = [r for r in rows if r["mode"] == "decode"]
    assert [int(r["kv_host_bytes"]) for r in decode] == [36_864 * n * 11 // 12 for n in (1024, 4096)]
    assert all(r["kv_host_bytes"] == "" for r in rows if r["mode"] == "prefill")
    assert all(r["kv_traffic_bytes"] == "" for r in csv.DictReader(io.StringIO(run_to_csv(base))))
    console = Console(width=250, record=True)
    console.print(points_table(off.points))
    text = console.export_text()
    assert "KV on host" in text and "moved/token" in text and "132.0 MiB" in text
    console = Console(width=250, record=True)
    console.print(points_table(base.points))
    assert "KV on host" not in console.export_text()
