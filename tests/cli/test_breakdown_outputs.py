"""The breakdown in the CLI, `runs show`, CSV, Markdown and HTML reports."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from ctxscope.cli import main
from ctxscope.core.breakdown import COMPONENTS
from ctxscope.core.results import RunResult
from ctxscope.core.serialize import load_run, run_from_dict, run_to_dict


def _block(attention: float, linear: float) -> dict[str, object]:
    parts = dict.fromkeys(COMPONENTS, 0.0)
    parts.update(attention=attention, projections=linear / 2, mlp=linear / 2, other=1.0)
    total = sum(parts.values())
    return {"clock": "cpu", "calls": 3, "components_ms": parts, "total_ms": total, "attributed_ms": total,
            "timed_median_ms": total / 2, "overhead": 2.0, "ranged_modules": 17, "error": None}


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory, tiny_config_files) -> tuple[Path, RunResult]:
    """A real `sweep --breakdown` written to a file (CLI, one process; ~10 s on shared cores)."""
    out = tmp_path_factory.mktemp("bd") / "run.json"
    code = main(["sweep", str(tiny_config_files["llama"]), "--lengths", "16,64", "--breakdown", "--no-store",
                 "--min-repeats", "3", "--max-repeats", "5", "--budget", "0.05", "--out", str(out)])
    assert code == 0
    return out, load_run(out)


def test_sweep_prints_the_split_and_the_crossovers(measured, capsys) -> None:
    from ctxscope.cli.breakdown_display import breakdown_lines

    _, run = measured
    lines = breakdown_lines(run)
    assert any(line.startswith("where the time goes — prefill") for line in lines)
    assert any(line.startswith("where the time goes — decode") for line in lines)
    assert sum("analytic" in line for line in lines) == 2  # one crossover line per mode
    rows = [line.split() for line in lines if line.strip().split(" ")[0] in ("16", "64")]
    assert len(rows) == 4 and all(0.9 <= float(r[-2]) <= 1.1 for r in rows)  # sum/total


def test_crossover_placed_between_measured_lengths(measured) -> None:
    from ctxscope.core.breakdown.crossover import crossing, describe

    _, run = measured
    points = tuple(replace(p, breakdown=_block(a, 10.0)) if p.mode == "prefill" else p
                   for p, a in zip(run.points, (2.0, 0.0, 40.0, 0.0)))
    run = replace(run, points=points)
    header = run.header
    analytic = {**(header.analytic or {}), "breakdown": {"prefill_length": 16.0, "decode_depth": None, "note": None}}
    run = replace(run, header=replace(header, analytic=analytic))  # type: ignore[arg-type]
    found = crossing(run, "prefill")
    assert found is not None and (found.below, found.above) == (16, 64)
    assert 16 < found.length < 64 and found.ratio == pytest.approx(found.length / 16.0)
    assert "measured ÷ analytic" in describe(run, "prefill")


def test_csv_markdown_html_carry_it(measured, tmp_path: Path, capsys) -> None:
    from ctxscope.report.html import render_html
    from ctxscope.report.markdown import render_markdown
    from ctxscope.report.tabular import run_to_csv

    _, run = measured
    rows = list(csv.DictReader(io.StringIO(run_to_csv(run))))
    assert len(rows) == 4
    for row, point in zip(rows, run.points):
        assert point.breakdown is not None
        assert float(row["breakdown_attention_ms"]) == pytest.approx(point.breakdown["components_ms"]["attention"])
        assert float(row["breakdown_total_ms"]) == pytest.approx(point.breakdown["total_ms"])
    md = render_markdown([run])
    assert "**where the time goes**" in md and "| attention kernel |" in md
    named = replace(run, header=replace(run.header, model=replace(run.header.model, source="<b>evil</b>")))
    html = render_html([named])
    assert "<h2>Where the time goes</h2>" in html and "<b>evil</b>" not in html
    assert html.count("share of profiled time (%)") == 2  # one stacked chart per mode
    plain = replace(run, points=tuple(replace(p, breakdown=None) for p in run.points),
                    header=replace(run.header, settings=replace(run.header.settings, breakdown=False)))
    assert "Where the time goes" not in render_html([plain])
    assert all(not row["breakdown_total_ms"] for row in csv.DictReader(io.StringIO(run_to_csv(plain))))


def test_runs_show_prints_it(measured, capsys) -> None:
    path, run = measured
    assert main(["runs", "import", str(path)]) == 0
    capsys.readouterr()
    assert main(["runs", "show", run.id]) == 0
    assert "where the time goes — prefill" in capsys.readouterr().out


def test_a_bad_block_is_refused_in_one_line(measured, tmp_path: Path, capsys) -> None:
    path, _ = measured
    data = json.loads(path.read_text(encoding="utf-8"))
    data["points"][1]["breakdown"]["overhead"] = "slow"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    assert main(["report", str(bad), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "points[1].breakdown.overhead" in err[0]
    assert run_from_dict(run_to_dict(load_run(path))).points[1].breakdown is not None
