"""Report rendering: wall time and size of the self-contained HTML report for one run and
for comparisons of several, from real run files (or synthetic runs when none are given);
then large runs, each in a fresh process: a 10,000-point run file loaded and reported
(HTML and Markdown), and a 200,000-point file (~200 MB) loaded.

    python bench/report_render.py --out bench/results/report-render-cpu.json
    python bench/report_render.py --runs a.json b.json c.json
    git archive <before> | tar -x -C /tmp/before
    python bench/report_render.py --before /tmp/before --out ...   # the same large cases, both trees

Targets (issue 12 item 17, issue 16 item 9): a report of a large run in seconds, and a
run file under the size cap loaded in seconds. ``--before`` runs the large cases with
another source tree's ``ctxscope`` in the same invocation (a timeout is recorded as such).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401

# Run in a fresh interpreter against whichever ctxscope is first on sys.path.
_LARGE_CASE = """
import json, sys, time
t0 = time.perf_counter()
from ctxscope.core.serialize import load_run
run = load_run(sys.argv[1])
out = {"points": len(run.points), "load_s": time.perf_counter() - t0}
if sys.argv[2] == "report":
    from ctxscope.report.html import render_html
    from ctxscope.report.markdown import render_markdown
    t1 = time.perf_counter()
    html = render_html([run])
    out.update(html_s=time.perf_counter() - t1, html_bytes=len(html.encode()))
    t2 = time.perf_counter()
    render_markdown([run])
    out["md_s"] = time.perf_counter() - t2
out["total_s"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def synthetic_runs(count: int, lengths: tuple[int, ...]) -> list:
    """Runs shaped like a real sweep (prefill + decode at each length, 20 samples per point)."""
    from ctxscope.core.results import (Environment, MemoryStats, ModelInfo, Point, RunHeader, RunResult,
                                       Settings)
    from ctxscope.core.stats import LatencyStats

    model = ModelInfo(source="preset:llama-3.2-1b", architecture="LlamaForCausalLM", model_type="llama",
                      params=1_235_814_400, random_weights=True, num_layers=16, hidden_size=2048, num_heads=32,
                      num_kv_heads=8, head_dim=64, vocab_size=128256, max_positions=131072, is_decoder=True)
    env = Environment(gpu_name=None, gpu_memory_bytes=None, driver=None, cuda=None, torch="2.13.0",
                      transformers="5.23.0", ctxscope="0.1.0", platform="Linux", cpu="synthetic",
                      memory_bytes=64 * 2**30)
    runs = []
    for i in range(count):
        settings = Settings(device="cpu", dtype="float32", attn_implementation=("sdpa", "eager", "flex")[i % 3],
                            batch_size=1, modes=("prefill", "decode"), lengths=lengths, warmup=1, seed=0,
                            min_repeats=5, max_repeats=20, budget_s=2.0, target_rel_iqr=0.05,
                            continue_after_oom=False, allow_beyond_max=False)
        points = []
        for n in lengths:
            for mode, ms in (("prefill", 0.05 * n * (1 + i / 4)), ("decode", 20 + n / 1000)):
                lat = LatencyStats.from_samples([ms * (1 + 0.01 * (k % 5)) for k in range(20)])
                mem = MemoryStats(weights_bytes=4_943_257_600, kv_cache_bytes=32_768 * n, activation_bytes=4096 * n)
                points.append(Point(mode=mode, length=n, batch_size=1, status="ok", latency_ms=lat,
                                    tokens_per_s=1000 * n / ms, memory=mem))
        header = RunHeader(id=f"bench-{i}", created="2026-11-23T12:00:00+00:00", model=model, settings=settings,
                           environment=env)
        runs.append(RunResult(header=header, status="complete", points=tuple(points)))
    return runs


def with_analytic(run):
    """The run with the analytic block a sweep records: a row per length (CPU: no device peak)."""
    from dataclasses import replace

    rows = [{"length": n, "kv_cache_bytes": 32_768 * n, "prefill_flops": 2.47e9 * n, "decode_flops": 2.47e9,
             "decode_bytes": 4_943_257_600 + 32_768 * n} for n in run.header.settings.lengths]
    analytic = {"params": 1_235_814_400, "weights_bytes": 4_943_257_600, "rows": rows, "notes": [], "peak": None}
    return replace(run, header=replace(run.header, analytic=analytic))


def large_case(src: Path, run_file: Path, what: str, timeout: float) -> dict:
    """One large case in a fresh process with ``src`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", _LARGE_CASE, str(run_file), what], env=env, cwd=src,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"finished": False, "timeout_s": timeout}
    if done.returncode != 0:
        return {"finished": False, "error": (done.stderr.strip().splitlines() or ["?"])[-1],
                "wall_s": time.perf_counter() - t0}
    return {"finished": True, **json.loads(done.stdout.strip().splitlines()[-1])}


def large_cases(before: Path | None, timeout: float) -> list[dict]:
    """A 10,000-point run reported, a 200,000-point file loaded; after (this tree) and
    before (``--before``), from the same files."""
    from ctxscope.core.serialize import write_run

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for points, what in ((10_000, "report"), (200_000, "load")):
            lengths = tuple(range(16, 16 + 8 * (points // 2), 8))  # prefill + decode at each
            path = Path(tmp) / f"run-{points}.json"
            write_run(with_analytic(synthetic_runs(1, lengths)[0]), path)
            case = {"case": f"{points:,} points: {'load + HTML + Markdown' if what == 'report' else 'load'}",
                    "file_bytes": path.stat().st_size}
            trees = [("after", _common.REPO)] + ([("before", before)] if before else [])
            for name, src in trees:
                case[name] = large_case(src, path, what, timeout)
                print(f"{case['case']} ({case['file_bytes'] / 1e6:.0f} MB), {name}: {case[name]}")
            cases.append(case)
    return cases


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="*", default=None, help="run files (default: synthetic runs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--before", type=Path, default=None,
                        help="another source tree (e.g. the last commit, from git archive) for the large cases")
    parser.add_argument("--before-label", default=None, help="what the --before tree is (e.g. a commit id)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per large case and tree")
    parser.add_argument("--no-large", action="store_true", help="skip the 10k- and 200k-point cases")
    args = parser.parse_args()
    from ctxscope.core.serialize import load_run
    from ctxscope.report.html import render_html

    lengths = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
    runs = [load_run(p) for p in args.runs] if args.runs else synthetic_runs(8, lengths)
    render_html(runs[:1])  # import matplotlib, fonts, the template once
    cases = []
    for count in sorted({1, min(2, len(runs)), min(3, len(runs)), len(runs)}):
        chosen = runs[:count]
        samples = timed(lambda: render_html(chosen), args.repeats)
        size = len(render_html(chosen).encode("utf-8"))
        cases.append({"runs": count, "points_per_run": len(chosen[0].points), "median_s": statistics.median(samples),
                      "samples_s": samples, "html_bytes": size})
        print(f"{count} run(s), {len(chosen[0].points)} points each: {statistics.median(samples):.2f} s, "
              f"{size / 1024:.0f} KiB")
    large = [] if args.no_large else large_cases(args.before, args.timeout)
    _common.write_result(args.out, {"benchmark": "report_render", "device": "cpu",
                                    "source": "files" if args.runs else "synthetic", "cases": cases,
                                    "large": large,
                                    "before_tree": (args.before_label or str(args.before)) if args.before else None})


if __name__ == "__main__":
    main()
