"""Quality in reports: the HTML section (charts, loss table with ratios, needle grid with
its controls, trade-off with the knee, claimed · fits · effective), Markdown and CSV
columns, comparison notes; user text escaped; no torch and no Qt needed."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityResult
from ctxscope.core.results import MemoryStats, Point, RunResult
from ctxscope.core.stats import LatencyStats
from ctxscope.report.html import render_html
from ctxscope.report.markdown import render_markdown
from ctxscope.report.tabular import run_to_csv
from ctxscope.report.tradeoff import tradeoff
from tests.core.test_quality_records import SETTINGS, _run

REPO = Path(__file__).resolve().parents[2]
LENGTHS = (256, 512, 1024, 2048, 4096)
LOSS = (3.40, 3.30, 3.26, 3.259, 3.2585)


def _quality_run(name: str = "pride-and-prejudice") -> RunResult:
    base = _run()
    points = tuple(Point("prefill", n, 1, "ok", latency_ms=LatencyStats.from_samples([n / 10, n / 10]),
                         memory=MemoryStats(weights_bytes=10, kv_cache_bytes=n * 100, activation_bytes=n))
                   for n in LENGTHS)
    loss = tuple(LossPoint(n, "ok", window_nll=(v - 0.05, v + 0.05)) for n, v in zip(LENGTHS, LOSS))
    # 20 trials per depth: enough for the Wilson interval to decide against 90 %.
    needle = tuple(NeedleTrial("grid", n, d, s, "ok", key="12345", found=n <= 1024 or d == 100.0,
                               key_logprob=-1.0, answer="12345") for n in LENGTHS for d in (0.0, 100.0) for s in range(20))
    needle += tuple(NeedleTrial("no-key", n, None, 0, "ok", key="55555", found=False, key_logprob=-14.0, answer="1")
                    for n in LENGTHS)
    needle += (NeedleTrial("adjacent", 30, None, 0, "ok", key="22222", found=True, key_logprob=-0.4, answer="22222"),)
    settings = replace(base.header.settings, lengths=LENGTHS, quality={**SETTINGS, "text": name, "fits": 3000})
    return replace(base, header=replace(base.header, settings=settings), points=points,
                   quality=QualityResult(loss=loss, needle=needle))


def test_html_report_has_the_quality_section() -> None:
    run = _quality_run("<script>alert(1)</script>")
    page = render_html([run])
    assert "What context buys" in page and "<script>alert(1)" not in page and "&lt;script&gt;" in page
    for chart in ("loss of the same target tokens", "needle retrieval, single —", "cost and benefit —"):
        assert chart in page  # the three quality charts, as SVG text
    assert ("claimed 8,192 · fits 3,000 · effective: retrieval ≥ 90% up to 1,024; below 90% at 2,048 (20/40, 95 % "
            "35%–65%); loss falls until 1,024, flat from 1,024 to 4,096 (within ±0.01 nats/token, TOST)") in page
    assert "knee at 1,024 tokens" in page and "no key planted (chance)" in page
    assert "Control, key right before the question (no haystack): single 1/1" in page


def test_comparison_overlays_loss_and_notes_different_windows() -> None:
    a = _quality_run()
    b = replace(a, header=replace(a.header, id="r2"),
                quality=replace(a.quality, loss=tuple(replace(p, window_nll=tuple(v + 0.1 for v in p.window_nll))
                                                      for p in a.quality.loss)))
    page = render_html([a, b])
    assert "ppl vs" in page and "×1.105" in page  # exp(0.1): perplexity ratio to the baseline
    assert "loss windows differ" not in page
    c = replace(b, header=replace(b.header, settings=replace(b.header.settings, quality={
        **b.header.settings.quality, "window_starts": [1, 2]})))
    assert "loss windows differ between runs" in render_html([a, c])


def test_markdown_and_csv_carry_quality() -> None:
    run = _quality_run("my_$notes$.txt")
    text = render_markdown([run])
    assert "**what context buys**" in text and "| 4,096 | 3.2585 |" in text and "my\\_\\$notes\\$.txt" in text
    assert "Control, key right before the question: single 1/1 found." in text
    rows = list(csv.DictReader(io.StringIO(run_to_csv(run))))
    by_length = {int(r["length"]): r for r in rows}
    assert float(by_length[512]["loss_nats_per_token"]) == 3.30 and by_length[4096]["needle_retrieval"] == "0.5"
    assert by_length[256]["needle_no_key_rate"] == "0.0"


def test_tradeoff_rows_and_knee() -> None:
    result = tradeoff(_quality_run())
    row = {r.length: r for r in result.rows}
    assert row[512].loss_saved_per_doubling == 0.10 or abs(row[512].loss_saved_per_doubling - 0.10) < 1e-9
    assert abs(row[512].ms_per_nat - 25.6 / 0.10) < 1e-6  # extra prefill ms per nat/token saved
    assert row[256].ms_per_nat is None and result.knee == 1024 and result.cost_name == "prefill latency"


def test_quality_reports_need_no_torch_or_qt() -> None:
    code = ("import sys, json; import ctxscope.report.html, ctxscope.report.quality, ctxscope.core.quality.effective; "
            "print(json.dumps(sorted(m for m in ('torch', 'PySide6', 'pyqtgraph') if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def _tasks_run() -> RunResult:
    """Two tasks at two lengths, 20 trials each, and the wrong-key control."""
    run = _quality_run()
    needle = tuple(NeedleTrial("grid", n, 50.0, s, "ok", key="12345", found=True, key_logprob=-0.5, answer="12345")
                   for n in (256, 512) for s in range(20))
    needle += tuple(NeedleTrial("grid", n, 50.0, s, "ok", key="quiet-harbor", task="multikey", expected=("1234567",),
                                distractors=("7654321",), found=s < 4, recall=float(s < 4), false_hits=int(s >= 4),
                                answer=" 7654321.") for n in (256, 512) for s in range(20))
    needle += tuple(NeedleTrial("wrong-key", n, None, s, "ok", key="bold-river", task="multikey",
                                distractors=("7654321",), false_hits=1, answer=" 7654321.") for n in (256, 512)
                    for s in range(3))
    settings = {**run.header.settings.quality, "tasks": ["single", "multikey"], "text_shipped": True}
    return replace(run, header=replace(run.header, settings=replace(run.header.settings, quality=settings)),
                   quality=replace(run.quality, needle=needle))


def test_reports_show_each_task_with_wilson_intervals_and_the_wrong_key_control() -> None:
    run = _tasks_run()
    page = render_html([run])
    assert "needle retrieval, single —" in page and "needle retrieval, multikey —" in page
    assert "20/20 · 100% (84%–100%)" in page and "4/20 · 20% (8%–42%)" in page  # counts, rate, Wilson 95 %
    assert "wrong key: value returned" in page and "3/3" in page
    assert "retrieval (the 2 tasks' average)" in page and "multikey below 90% at 256" in page
    assert "training data" in page  # the shipped, famous text may be memorised
    text = render_markdown([run])
    assert "| 256 | 20/20 · 100% (84%–100%) | 4/20 · 20% (8%–42%) | 3/3 |" in text
    rows = {int(r["length"]): r for r in csv.DictReader(io.StringIO(run_to_csv(run)))}
    assert rows[256]["needle_multikey_rate"] == "0.2" and rows[256]["needle_wrong_key_false_rate"] == "1.0"
    assert float(rows[256]["needle_retrieval_ci95_low"]) == pytest.approx(0.8389, abs=1e-3)
