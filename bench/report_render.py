"""Report rendering: wall time and size of the self-contained HTML report for one run and
for comparisons of several, from real run files (or synthetic runs when none are given).

    python bench/report_render.py --out bench/results/report-render-cpu.json
    python bench/report_render.py --runs a.json b.json c.json

No target in the issues: the figures tell whether rendering belongs off the UI thread
(it does: the app writes reports from a worker thread).
"""

from __future__ import annotations

import argparse
import statistics
import time
import _common  # noqa: F401


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
    _common.write_result(args.out, {"benchmark": "report_render", "device": "cpu",
                                    "source": "files" if args.runs else "synthetic", "cases": cases})


if __name__ == "__main__":
    main()
