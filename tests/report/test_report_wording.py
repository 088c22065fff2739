"""What reports and comparisons say (issue 27, items 2 and 16): whole run ids, cancelled
runs named as such, a single run's notes not headed as differences, one contention line
per run instead of one per point, plurals, Markdown without needless escapes, the
trade-off's cost per nat in the same unit everywhere, a memory chart of one length."""

from __future__ import annotations

import re
from dataclasses import replace

from rich.console import Console

from ctxscope.cli import main
from ctxscope.cli.display import points_table
from ctxscope.core.results import RunResult
from ctxscope.core.serialize import write_run
from ctxscope.core.units import plural
from ctxscope.report import charts
from ctxscope.report.compare import compare, run_labels
from ctxscope.report.html import render_html
from ctxscope.report.markdown import render_markdown
from tests.report.test_reports import make_run

RUN_ID = "20261201-081100-a1b2c3"


def _cancelled() -> RunResult:
    run = make_run(RUN_ID)
    return replace(run, status="cancelled", points=run.points[:3])


def _contended(run: RunResult, cores: dict[int, float]) -> RunResult:
    """Points of ``run`` at these indexes timed while other processes used that many cores."""
    points = list(run.points)
    for i, c in cores.items():
        telemetry = {**(points[i].telemetry or {}), "cpu_other_cores": c}
        points[i] = replace(points[i], telemetry=telemetry,
                            contention=f"other processes kept {c:.1f} CPU cores busy while timed")
    return replace(run, points=tuple(points))


def test_a_cancelled_run_is_named_whole_and_called_cancelled(tmp_path, capsys) -> None:
    other = make_run("20261201-093000-d4e5f6", attn="eager")
    notes = compare([_cancelled(), other]).differences
    assert f"run {RUN_ID} cancelled: 3 of 3 points measured" in notes  # not "not complete: 20261201"
    assert not any(re.search(r"\b20261201\b(?!-)", n) for n in notes)
    html = render_html([_cancelled(), other])
    assert f"run {RUN_ID} cancelled" in html
    md = render_markdown([_cancelled(), other])
    assert f"run {RUN_ID} cancelled" in md.replace("\\", "")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_run(_cancelled(), a)
    write_run(other, b)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "cancelled" in out and f"run {RUN_ID} cancelled: 3 of 3 points measured" in out


def test_a_single_run_has_notes_not_differences() -> None:
    single = render_html([_cancelled()])
    assert "Differences between the runs" not in single and "Notes on this run" in single
    assert "(compare with care)" not in single
    pair = render_html([_cancelled(), make_run("b2", attn="eager")])
    assert "Differences between the runs" in pair and "Notes on this run" not in pair


def test_contention_is_one_line_per_run_not_one_per_point() -> None:
    run = _contended(make_run("c1"), {0: 0.8, 2: 1.6, 3: 1.2})
    html = render_html([run]).split('<script type="application/json"')[0]  # the page, not its raw data
    summary = "3 points of 6 contended: other processes kept 0.8–1.6 CPU cores busy while timed"
    assert summary in html
    # Once in the notes at the top, once under the points table; the rows just say so.
    assert html.count("CPU cores busy") == 2 and html.count("contended.</td>") == 3
    console = Console(width=250, record=True)
    console.print(points_table(run.points))
    text = console.export_text()
    assert text.count("CPU cores busy") == 1 and summary in text
    assert f"run c1: {summary}" in compare([run, make_run("d2", attn="eager")]).differences


def test_plurals() -> None:
    assert plural(1, "run") == "1 run" and plural(2, "run") == "2 runs" and plural(1024, "point") == "1,024 points"
    one = replace(make_run("t1"), header=replace(make_run("t1").header, settings=replace(
        make_run("t1").header.settings, threads=1)))
    two = replace(one, header=replace(one.header, id="t2", settings=replace(one.header.settings, threads=2)))
    assert run_labels([one, two]) == ("1 thread", "2 threads")
    html = render_html([one])
    assert "1 CPU thread" in html and "1 CPU threads" not in html
    assert "(1 point)" in render_html([replace(one, points=one.points[:1])])  # the telemetry summary line


def test_markdown_keeps_parentheses_and_hashes_readable() -> None:
    a = make_run("m1")
    b = replace(make_run("m2"), header=replace(make_run("m2").header, created="2026-11-23T08:11:00+00:00"))
    md = render_markdown([a, b])
    assert "(08:11)" in md and "\\(" not in md and "\\)" not in md
    assert md_injection_safe(render_markdown([replace(a, header=replace(a.header, model=replace(
        a.header.model, source="[x](http://evil) ![i](y) #h")))]))


def md_injection_safe(md: str) -> bool:
    """No link or image can form: every [ and ] from the run is escaped."""
    return "](" not in md.replace("\\](", "") and "\\[x\\](http://evil)" in md


def test_memory_chart_with_one_length_draws_a_stacked_bar() -> None:
    run = make_run("s1", lengths=(1024,))
    points = tuple(p for p in run.points if p.mode == "prefill")
    svg = charts.memory_svg(points, title="prefill: memory by component", capacity=None, capacity_label="")
    assert svg is not None and "memory by component" in svg
    # Three bars (weights, KV cache, activations) beside the figure's and axes' own patches;
    # the stacked area drew nothing at one length.
    assert svg.count('id="patch_') >= 5
    page = render_html([run])
    assert "memory by component" in page and "memory by layer" not in page


def test_tradeoff_cost_per_nat_reads_the_same_in_the_terminal_and_html() -> None:
    from ctxscope.cli.quality_display import tradeoff_table
    from tests.report.test_quality_report import _quality_run

    run = _quality_run()
    console = Console(width=250, record=True)
    tradeoff_table(run, console)
    text = console.export_text()
    assert "256.0 ms" in text  # was "256", ms in the header only
    assert "prefill/nat" in text and "ms/nat" not in text
    assert "256.0 ms" in render_html([run])  # 25.6 ms more prefill for 0.10 nats/token saved
