"""Reports and comparisons: ratios on hand-built runs, HTML structure, the no-network
property, escaping of hostile names, Markdown, and the report/compare CLI."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from ctxscope.cli import main
from ctxscope.core.results import Environment, MemoryStats, ModelInfo, Point, RunHeader, RunResult, Settings
from ctxscope.core.serialize import load_run, write_run
from ctxscope.core.stats import LatencyStats
from ctxscope.report.compare import RunKey, compare, peak_bytes
from ctxscope.report.fmt import fmt_bytes
from ctxscope.report.html import render_html
from ctxscope.report.markdown import md_escape, render_markdown

HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>']
GIB = 1024**3


def make_run(run_id: str, *, source: str = "preset:gpt2", attn: str = "sdpa", dtype: str = "float16",
             scale: float = 1.0, oom_from: int | None = None, lengths=(1024, 2048, 4096),
             gpu: str | None = "NVIDIA H100 80GB HBM3", ctx_version: str = "0.1.0") -> RunResult:
    """A run whose median prefill latency is ``scale`` × L/1024 ms (decode: ``scale`` × 0.01 ms × L/1024)."""
    model = ModelInfo(source=source, architecture="GPT2LMHeadModel", model_type="gpt2", params=124_439_808,
                      random_weights=True, num_layers=12, hidden_size=768, num_heads=12, num_kv_heads=12,
                      head_dim=64, vocab_size=50257, max_positions=8192, is_decoder=True)
    settings = Settings(device="cuda:0", dtype=dtype, attn_implementation=attn, batch_size=1,
                        modes=("prefill", "decode"), lengths=tuple(lengths), warmup=1, seed=0, min_repeats=3,
                        max_repeats=10, budget_s=1.0, target_rel_iqr=0.05, continue_after_oom=False,
                        allow_beyond_max=False, timer="cuda_event")
    env = Environment(gpu_name=gpu, gpu_memory_bytes=80 * GIB if gpu else None, driver="550.54", cuda="12.4",
                      torch="2.11.0", transformers="5.17.0", ctxscope=ctx_version, platform="Linux", cpu="x86_64",
                      memory_bytes=64 * GIB)
    points = []
    for n in lengths:
        for mode, base in (("prefill", 1.0), ("decode", 0.01)):
            if oom_from is not None and n >= oom_from:
                status = "oom" if n == oom_from and mode == "prefill" else "skipped"
                points.append(Point(mode=mode, length=n, batch_size=1, status=status, error=f"{status} at {n}"))
                continue
            ms = scale * base * n / 1024
            lat = LatencyStats.from_samples([ms * 0.98, ms, ms, ms * 1.02, ms])
            mem = MemoryStats(weights_bytes=250_000_000, kv_cache_bytes=36_864 * n, activation_bytes=1000 * n,
                              peak_allocated_bytes=250_000_000 + 37_864 * n)
            points.append(Point(mode=mode, length=n, batch_size=1, status="ok", latency_ms=lat,
                                tokens_per_s=n / ms * 1000 if mode == "prefill" else 1000 / ms, memory=mem,
                                telemetry={"samples": 3, "gpu_util_mean_percent": 97.0, "power_mean_w": 500.0}))
    header = RunHeader(id=run_id, created="2026-11-23T10:00:00+00:00", model=model, settings=settings, environment=env)
    return RunResult(header=header, status="complete", points=tuple(points), finished="2026-11-23T10:01:00+00:00")


def test_compare_ratios_max_lengths_and_labels() -> None:
    a, b, c = make_run("a1"), make_run("b2", attn="eager", scale=2.0, oom_from=4096), make_run("c3", scale=0.5)
    cmp = compare([a, b, c], baseline=0)
    assert cmp.labels == ("sdpa (a1)", "eager", "sdpa (c3)")  # only the fields that differ; duplicates get ids
    prefill = cmp.rows_of("prefill")
    assert [r.length for r in prefill] == [1024, 2048, 4096]
    assert prefill[1].cells[1].latency_ratio == pytest.approx(2.0)
    assert prefill[1].cells[2].latency_ratio == pytest.approx(0.5)
    assert prefill[0].cells[0].latency_ratio == pytest.approx(1.0)
    assert prefill[2].cells[1].status == "oom" and prefill[2].cells[1].latency_ratio is None
    assert cmp.max_ok[1] == {"prefill": 2048, "decode": 2048} and cmp.first_oom[1]["prefill"] == 4096
    assert cmp.max_ok[0]["prefill"] == 4096 and cmp.first_oom[0]["prefill"] is None
    assert prefill[0].cells[1].memory_ratio == pytest.approx(1.0)
    assert RunKey.of(b).attn == "eager" and cmp.differences == ()
    # Another baseline flips the ratios.
    assert compare([a, b], baseline=1).rows_of("decode")[0].cells[0].latency_ratio == pytest.approx(0.5)


def test_compare_calls_out_differences_and_missing_points() -> None:
    a = make_run("a1", gpu="NVIDIA A100-SXM4-80GB")
    b = make_run("b2", gpu=None, ctx_version="0.2.0", lengths=(1024, 8192))
    cmp = compare([a, b])
    notes = " ".join(cmp.differences)
    assert "different device" in notes and "ctxscope version" in notes
    rows = {r.length: r for r in cmp.rows_of("prefill")}
    assert rows[8192].cells[0].status is None and rows[2048].cells[1].status is None  # not run ≠ failed
    assert peak_bytes(MemoryStats(weights_bytes=10, kv_cache_bytes=5, activation_bytes=-3)) == 15
    with pytest.raises(Exception, match="baseline"):
        compare([a], baseline=3)


def _tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every start tag a browser would see, with its attributes."""
    from html.parser import HTMLParser

    found: list = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(html)
    return found


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", html, flags=re.S)


def test_single_run_report_structure() -> None:
    run = make_run("a1", oom_from=4096)
    html = render_html([run], predictions={"a1": {1024: 300_000_000, 2048: 330_000_000}})
    assert html.startswith("<!DOCTYPE html>")
    for text in ("At a glance", "Prefill (whole prompt, one call)", "Decode (one token at depth L)", "Throughput",
                 "Points", "How this was measured", "124,439,808", "NVIDIA H100 80GB HBM3", "Random weights",
                 "predicted weights + KV", "out of memory from L=4,096", "GPU util % (mean)"):
        assert text in html, text
    assert len(_svgs(html)) == 5  # latency + memory for two modes, throughput
    assert "oom at 4096" in html
    raw = re.search(r'<script type="application/json" id="ctxscope-data">(.*?)</script>', html, re.S).group(1)
    assert json.loads(raw)[0]["id"] == "a1"  # the raw numbers travel inside


def test_three_run_comparison_has_every_run_and_ratios() -> None:
    runs = [make_run("a1"), make_run("b2", attn="eager", scale=2.0, oom_from=4096),
            make_run("c3", attn="flash_attention_2", scale=0.5)]
    html = render_html(runs, baseline=0)
    svgs = _svgs(html)
    assert len(svgs) == 2 * 3 + 1  # latency, ratio, peak memory per mode; throughput
    latency = svgs[0]
    for label in ("sdpa", "eager", "flash_attention_2"):
        assert label in latency  # each run's curve has its legend entry
    assert "Comparison tables" in html and "2.00×" in html and "0.50×" in html
    assert "baseline: sdpa" in html


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_escaped_everywhere(name: str, tmp_path: Path) -> None:
    run = make_run("a1", source=name)
    other = make_run("b2", source=name + "2", attn="eager")
    for html in (render_html([run]), render_html([run, other], title=name)):
        assert name not in html
        tags = _tags(html)
        assert not [t for t, _ in tags if t == "img"]  # no attention captured: any <img> was injected
        assert not [(t, a) for t, attrs in tags for a, _ in attrs if a.startswith("on")]  # no event handlers
        assert [dict(a).get("type") for t, a in tags if t == "script"] == ["application/json"]  # inert data only
    md = render_markdown([run, other])
    assert "<script>" not in md and "<img" not in md


def test_report_makes_no_network_request() -> None:
    html = render_html([make_run("a1"), make_run("b2", attn="eager")])
    refs = re.findall(r'\b(?:src|href)\s*=\s*["\']?([^"\' >]+)', html)  # also xlink:href
    refs += re.findall(r"url\(\s*['\"]?([^)'\"]*)", html)
    assert refs and all(r.startswith(("#", "data:")) for r in refs), {r for r in refs if not r.startswith("#")}
    assert "@import" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', "")


def test_markdown_summary() -> None:
    md = render_markdown([make_run("a1"), make_run("b2", attn="eager", scale=2.0)])
    assert md.startswith("### ctxscope: 2 runs compared (baseline sdpa)")
    assert "| 2,048 | 2.000 ms | 312.4 MiB | 4.000 ms | 2.00× | 312.4 MiB |" in md
    assert md_escape("a|b*c_<d>") == "a\\|b\\*c\\_&lt;d&gt;"


def test_report_with_attention_thumbnails(loaded_llama, tmp_path: Path) -> None:
    from tests.conftest import drain, fast_config

    from ctxscope.core.attention import CaptureConfig
    from ctxscope.core.jobs.sweep import run_sweep
    from ctxscope.store.recorder import RunRecorder

    recorder = RunRecorder(None, maps_dir=tmp_path)
    events, run = drain(run_sweep(loaded_llama, fast_config((32, 64), modes=("prefill",),
                                                             attention=CaptureConfig(tiles=8))))
    for e in events:
        recorder.record(e)
    html = render_html([run], maps={run.id: tmp_path / f"{run.id}.attention.npz"})
    assert html.count("data:image/png;base64,") == 4  # 2 lengths × 2 layers (first and last)
    assert "attention statistics vs L" in html
    missing = render_html([run], maps={})
    assert "statistics only" in missing and "data:image/png" not in missing


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_and_compare_cli(capsys, tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_run(make_run("a1"), a)
    write_run(make_run("b2", attn="eager", scale=2.0), b)
    code, _, err = run_cli(capsys, "report", str(a), str(b), "--out", str(tmp_path / "cmp.html"))
    assert code == 0 and "comparison of 2 runs" in err
    assert "Comparison tables" in (tmp_path / "cmp.html").read_text()
    code, _, _ = run_cli(capsys, "report", str(a), "--out", str(tmp_path / "one.md"))
    assert code == 0 and (tmp_path / "one.md").read_text().startswith("### ctxscope: preset:gpt2\n")
    code, out, _ = run_cli(capsys, "compare", str(a), str(b), "--format", "json")
    data = json.loads(out)
    assert data["schema"] == "ctxscope.compare/1" and data["runs"][1]["label"] == "eager"
    assert data["rows"][0]["cells"][1]["latency_ratio"] == pytest.approx(2.0)
    code, out, _ = run_cli(capsys, "compare", str(a), str(b), "--baseline", "2")
    assert code == 0 and "(0.50×)" in out
    # A stored run by id prefix, mixed with a file.
    assert run_cli(capsys, "runs", "import", str(a))[0] == 0
    code, _, _ = run_cli(capsys, "report", "a1", str(b), "--out", str(tmp_path / "mixed.csv"))
    rows = (tmp_path / "mixed.csv").read_text().strip().splitlines()
    assert code == 0 and rows[0].startswith("run_id,") and len(rows) == 1 + 6 + 6
    code, _, _ = run_cli(capsys, "runs", "export", "a1", "--out", str(tmp_path / "x.html"))
    assert code == 0 and "At a glance" in (tmp_path / "x.html").read_text()


@pytest.mark.parametrize("argv, message", [
    (["compare", "{a}"], "two or more runs"),
    (["compare", "{a}", "{a}", "--baseline", "3"], "--baseline 3"),
    (["report", "{bad}", "--out", "{out}"], "not valid JSON"),
    (["report", "{hostile}", "--out", "{out}"], "schema"),
    (["report", "nope-not-a-run", "--out", "{out}"], "no run with id"),
    (["report", "{a}", "--out", "/nonexistent-dir/r.html"], "does not exist"),
])
def test_report_bad_input(capsys, tmp_path: Path, argv: list[str], message: str) -> None:
    a = tmp_path / "a.json"
    write_run(make_run("a1"), a)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "hostile.json").write_text(json.dumps({"schema": "__import__('os').system('x')"}))
    fill = {"a": str(a), "bad": str(tmp_path / "bad.json"), "hostile": str(tmp_path / "hostile.json"),
            "out": str(tmp_path / "o.html")}
    code, _, err = run_cli(capsys, *[x.format(**fill) for x in argv])
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_matrix_sweep_loads_each_model_once(capsys, tiny_config_files, tmp_path: Path, monkeypatch) -> None:
    import ctxscope.core.model.loading as loading

    loads: list[str] = []
    real = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda spec: loads.append(spec.source) or real(spec))
    model = str(tiny_config_files["llama"])
    code, out, err = run_cli(capsys, "sweep", model, "--device", "cpu", "--lengths", "16,32", "--attn", "sdpa,eager",
                             "--quiet", "--out", str(tmp_path / "runs"), "--html", str(tmp_path / "m.html"),
                             "--min-repeats", "2", "--max-repeats", "3", "--budget", "0.05")
    assert code == 0, err
    assert loads == [model]  # one load, two kernels
    runs = sorted((load_run(p) for p in (tmp_path / "runs").glob("*.json")), key=lambda r: r.header.created)
    assert {r.header.settings.attn_implementation for r in runs} == {"sdpa", "eager"}
    assert "eager" in out and "(baseline)" in out  # the comparison is printed
    assert "Comparison tables" in (tmp_path / "m.html").read_text()
    assert len(json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])) == 2


def test_matrix_sweep_bad_kernel_keeps_the_rest(capsys, tiny_config_files, tmp_path: Path) -> None:
    model = str(tiny_config_files["llama"])
    code, _, err = run_cli(capsys, "sweep", model, "--device", "cpu", "--lengths", "16", "--attn", "sdpa,no_such_kernel",
                           "--quiet", "--min-repeats", "2", "--max-repeats", "2", "--budget", "0")
    assert code == 2 and "no_such_kernel" in err and "Traceback" not in err
    [row] = json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1])
    assert row["attn"] == "sdpa" and row["status"] == "complete"


def test_matrix_sweep_out_must_be_a_directory(capsys, tiny_config_files, tmp_path: Path) -> None:
    model = str(tiny_config_files["llama"])
    code, _, err = run_cli(capsys, "sweep", model, "--device", "cpu", "--lengths", "16", "--attn", "sdpa,eager",
                           "--out", str(tmp_path / "runs.json"))
    assert code == 2 and "give a directory" in err and not (tmp_path / "runs.json").exists()
    assert json.loads(run_cli(capsys, "runs", "list", "--format", "json")[1]) == []  # nothing measured


def test_switch_attention_gives_the_same_outputs(loaded_llama) -> None:
    import torch

    from ctxscope.core.model.loading import switch_attention

    ids = torch.randint(0, 256, (1, 24))
    before = loaded_llama.model(ids).logits
    eager = switch_attention(loaded_llama, "eager")
    try:
        assert eager.attn_implementation == "eager" and eager.model is loaded_llama.model
        torch.testing.assert_close(eager.model(ids).logits, before, atol=1e-5, rtol=1e-4)
    finally:
        switch_attention(eager, loaded_llama.attn_implementation)


def test_sweep_points_carry_a_telemetry_summary(loaded_llama) -> None:
    from tests.conftest import drain, fast_config

    from ctxscope.core.jobs.sweep import run_sweep
    from ctxscope.core.machine.telemetry import TelemetrySample, summarize

    summary = summarize([TelemetrySample(t=0.0, cpu_percent=50, rss_bytes=10, power_w=100.0, gpu_util_percent=80),
                         TelemetrySample(t=0.5, cpu_percent=70, rss_bytes=30, power_w=300.0, gpu_util_percent=100)])
    assert summary["power_mean_w"] == 200.0 and summary["power_max_w"] == 300.0 and summary["rss_max_bytes"] == 30
    assert summary["gpu_util_mean_percent"] == 90.0 and summary["window_s"] == 0.5 and summary["samples"] == 2
    assert summarize([]) is None
    _, run = drain(run_sweep(loaded_llama, fast_config((64,), modes=("prefill",), telemetry_hz=200.0,
                                                        min_repeats=20, max_repeats=20)))
    [point] = run.points
    assert point.telemetry is not None and point.telemetry["samples"] >= 1
    assert point.telemetry["rss_max_bytes"] > 0
    assert replace(point, telemetry=None).telemetry is None


def _at(run: RunResult, created: str, **settings) -> RunResult:
    header = replace(run.header, created=created, settings=replace(run.header.settings, **settings))
    return replace(run, header=header)


def test_runs_of_one_configuration_get_distinct_labels_everywhere(capsys, tmp_path: Path) -> None:
    # Issue 12 item 1: two runs of preset:gpt2 on one day were both "preset:gpt2 (20261128)".
    a = _at(make_run("20261128-105112-aaaaaa"), "2026-11-28T10:51:12+00:00")
    b = _at(make_run("20261128-105230-bbbbbb"), "2026-11-28T10:52:30+00:00")
    assert compare([a, b]).labels == ("preset:gpt2 (10:51)", "preset:gpt2 (10:52)")
    same_minute = _at(b, "2026-11-28T10:51:40+00:00")
    assert compare([a, same_minute]).labels == ("preset:gpt2 (10:51:12)", "preset:gpt2 (10:51:40)")
    other_day = _at(b, "2026-11-29T10:51:12+00:00")
    assert compare([a, other_day]).labels == ("preset:gpt2 (2026-11-28 10:51)", "preset:gpt2 (2026-11-29 10:51)")
    assert compare([a, a]).labels == ("preset:gpt2 (20261128-105112-aaaaaa)", "preset:gpt2 (20261128-105112-aaaaaa) #2")
    threads = _at(b, "2026-11-28T10:52:30+00:00", threads=1)
    assert compare([a, threads]).labels == ("default threads", "1 thread")
    assert "different CPU threads: default, 1" in compare([a, threads]).differences
    # The same labels in every output: Markdown, terminal, JSON, HTML.
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    files = (str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    md = run_cli(capsys, "compare", *files, "--format", "md")[1]
    table = run_cli(capsys, "compare", *files)[1]
    data = json.loads(run_cli(capsys, "compare", *files, "--format", "json")[1])
    html = render_html([a, b])
    assert [r["label"] for r in data["runs"]] == ["preset:gpt2 (10:51)", "preset:gpt2 (10:52)"]
    for text in (md.replace("\\", ""), table, html):
        assert "preset:gpt2 (10:51)" in text and "preset:gpt2 (10:52)" in text


def test_peak_figures_are_named_for_what_they_are() -> None:
    # Issue 12 item 2: "peak" was the RSS in `sweep` and weights + KV + activations in `compare`.
    from rich.console import Console

    from ctxscope.cli.display import points_table

    run = make_run("c1", gpu=None)
    cpu = replace(run, points=tuple(
        replace(p, memory=replace(p.memory, peak_allocated_bytes=None, peak_rss_bytes=900 * 2**20)) if p.memory
        else p for p in run.points))
    md = render_markdown([cpu, replace(cpu, header=replace(cpu.header, id="c2"))])
    assert "| A model peak |" in md and "| B model peak |" in md and "| peak |" not in md
    assert "model peak = weights + KV cache + state + activations" in md and "process peak (RSS)" in md
    html = render_html([cpu])
    assert "<th>model peak</th>" in html and "process peak (RSS)" in html
    console = Console(width=250, record=True)
    console.print(points_table(cpu.points))
    text = console.export_text()
    assert "process peak (RSS)" in text and "900.0 MiB" in text
    # Issue 27 item 6: the CLI table names the model peak as reports do, with the same figure.
    assert "model peak" in text and fmt_bytes(peak_bytes(cpu.points[0].memory)) in text
    assert compare([cpu]).rows[0].cells[0].peak_kind == "model"
    gpu = make_run("g1")
    assert compare([gpu]).rows[0].cells[0].peak_kind == "allocator"
    assert "| A allocator peak |" in render_markdown([gpu])


def _with_medians(run: RunResult, mode: str, medians: dict[int, float]) -> RunResult:
    points = tuple(replace(p, latency_ms=LatencyStats.from_samples([medians[p.length]] * 3))
                   if p.mode == mode and p.length in medians else p for p in run.points)
    return replace(run, points=points)


def test_fit_needs_five_lengths_and_physical_coefficients() -> None:
    # Issue 12 item 3: three lengths gave R² = 1.000, a negative intercept and a negative c.
    from ctxscope.core.predict.efficiency import fit_latency, fit_note

    assert fit_latency([1024, 2048, 4096], [1.0, 2.5, 3.0]) is None
    three = make_run("f3")
    assert fit_note(three, "prefill") == "too few points for a fit (n < 5): 3 lengths ran"
    html = render_html([three])
    assert "too few points for a fit (n &lt; 5)" in html and "fit a + bL" not in html
    lengths = (128, 256, 512, 1024, 2048)
    flattening = _with_medians(make_run("f5", lengths=lengths), "prefill",
                               {128: 10.0, 256: 30.0, 512: 45.0, 1024: 52.0, 2048: 55.0})
    fit = fit_latency(lengths, [10.0, 30.0, 45.0, 52.0, 55.0])
    assert fit is not None and not fit.physical and fit.crossover is None and fit.problems[0].startswith("c = -")
    html = render_html([flattening])
    assert "not physical: c = -" in html
    prefill_latency = _svgs(html)[0]
    assert "fit a + bL" not in prefill_latency  # not drawn as a model...
    assert "fit a + bL + cL² (R² 1.000, 5 lengths)" in _svgs(html)[2]  # ...while decode's straight line is
    ok = fit_latency([512, 1024, 2048, 4096, 8192], [5 + 0.01 * n + 1e-6 * n * n for n in (512, 1024, 2048, 4096, 8192)])
    assert ok.physical and ok.crossover == pytest.approx(10_000, rel=1e-6) and ok.n == 5


def _y_tick_labels(svg: str) -> list[str]:
    return re.findall(r'text-anchor: end"[^>]*>([^<]+)</text>', svg)


def test_prefill_only_run_in_a_comparison_draws_no_empty_chart() -> None:
    # Issue 12 item 8: an empty 0–1 decode ratio chart, a matplotlib UserWarning (an
    # error under this test configuration) and a log axis with a single tick label.
    full = make_run("a1")
    prefill_only = replace(make_run("b2", attn="eager"),
                           points=tuple(p for p in make_run("b2").points if p.mode == "prefill"))
    html = render_html([full, prefill_only])
    svgs = _svgs(html)
    titles = [re.search(r">([^<]*(?:latency|peak|throughput)[^<]*)</text>", s).group(1) for s in svgs]
    assert len(svgs) == 6 and "prefill: latency relative" in html and "decode: latency relative" not in html
    for svg, title in zip(svgs, titles):
        if "relative" in title or "peak" in title:
            continue  # linear axes
        labels = _y_tick_labels(svg)
        assert len(labels) >= 3, (title, labels)
        assert not any("e+" in t or "×" in t or "$" in t for t in labels), labels
    baseline_prefill_only = render_html([prefill_only, full])
    assert "decode: latency relative" not in baseline_prefill_only  # no baseline point: no ratios


def test_decimation_keeps_every_extreme() -> None:
    import numpy as np

    from ctxscope.report.axes import thin, thin_band

    x = np.arange(16, 16 + 8 * 5000, 8, dtype=float)
    rng = np.random.default_rng(1)
    y = 1 + rng.random(len(x))
    y[1234], y[4321] = 50.0, 0.01  # one spike, one dip
    tx, ty = thin(x, y)
    assert len(tx) <= 600 and ty.max() == 50.0 and ty.min() == 0.01 and np.all(np.diff(tx) > 0)
    lo, hi = y * 0.9, y * 1.1
    bx, blo, bhi = thin_band(x, lo, hi)
    assert len(bx) <= 600
    for i in rng.integers(0, len(x), 200).tolist() + [1234, 4321]:  # every point lies inside the drawn band
        inside = (bx[0::2] <= x[i]) & (x[i] <= bx[1::2])
        assert inside.any() and blo[0::2][inside].min() <= lo[i] and bhi[0::2][inside].max() >= hi[i]


def test_a_ten_thousand_point_report_is_fast_and_keeps_every_point() -> None:
    # Issue 12 item 17: an HTML report of a 10,000-point run did not finish within minutes.
    import time

    from tests.core.test_efficiency import ANALYTIC

    lengths = tuple(range(16, 16 + 8 * 5000, 8))
    run = make_run("big", lengths=lengths)
    # As a sweep writes it: an analytic row per length (looked up for every point).
    analytic = {**ANALYTIC, "rows": [{**ANALYTIC["rows"][0], "length": n} for n in lengths]}
    run = replace(run, header=replace(run.header, analytic=analytic))
    t0 = time.perf_counter()
    html = render_html([run])
    md = render_markdown([run, replace(run, header=replace(run.header, id="big2"))])
    elapsed = time.perf_counter() - t0
    assert elapsed < 60, elapsed  # ≈ 3 s on a 2-core VM; minutes before
    svgs = _svgs(html)
    assert svgs and max(len(s) for s in svgs) < 250_000, [len(s) for s in svgs]  # drawn decimated...
    assert html.count('<td class="l status-ok">ok</td>') == 10_000  # ...while the points table keeps every point
    assert md.count("\n| ") < 60  # Markdown shows a sample of rows, as before


def test_report_names_where_a_remote_run_was_measured() -> None:
    here = make_run("a1")
    assert "measured on" not in render_html([here])  # a local run has no such row
    remote = make_run("b2")
    remote = replace(remote, header=replace(remote.header, environment=replace(
        remote.header.environment, host='me@gpu-box <i>"x"</i>')))
    html = render_html([remote])
    assert "measured on" in html
    assert "me@gpu-box &lt;i&gt;" in html and "<i>" not in html  # escaped like every other field
