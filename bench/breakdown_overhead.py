"""Breakdown overhead: what the profiled pass costs beside a timed prefill, and whether
its components add up.

    python bench/breakdown_overhead.py --model demo:smollm2 --device cpu --lengths 128,512,2048 \
        --out bench/results/breakdown-overhead-cpu.json

Per length: the timed prefill's median (the sweep's repetition policy), the profiled
call's median wall time (each of ``--rounds`` profiled passes, each its own
``profile_point``), their ratio (the profiler's overhead on the call itself), the whole
profiled pass's wall time (hooks, warm call, profiled calls, event processing) over the
timed median, and attributed ÷ profiled (the components' sum over the call's wall time).
On a GPU the components are kernel time through CUPTI; only record GPU figures measured
on a GPU. Note the load of the machine beside the figures (other processes skew both
sides, not equally: the profiled pass is ~3 calls, the timed median many).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _common


def main() -> None:
    from ctxscope.core.breakdown.profiled import profile_point
    from ctxscope.core.lengths import parse_lengths
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.measure.measurer import Measurer
    from ctxscope.core.spec import ModelSpec, SweepConfig

    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo:smollm2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--lengths", default="128,512,2048")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(ModelSpec(args.model, device=args.device, dtype=args.dtype))
    cfg = SweepConfig(lengths=parse_lengths(args.lengths), modes=("prefill",))
    measurer = Measurer(loaded, cfg)
    rows = []
    for length in cfg.lengths:
        point = measurer.measure("prefill", length)
        assert point.latency_ms is not None
        timed = point.latency_ms.median
        blocks, pass_s = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            blocks.append(profile_point(measurer, "prefill", length, timed))
            pass_s.append(time.perf_counter() - t0)
        profiled = statistics.median(b["total_ms"] for b in blocks)
        added = statistics.median(b["attributed_ms"] / b["total_ms"] for b in blocks)
        shares = {k: statistics.median(b["components_ms"][k] / b["attributed_ms"] for b in blocks)
                  for k in blocks[0]["components_ms"]}
        row = {"length": length, "timed_median_ms": timed, "timed_n": point.latency_ms.n,
               "profiled_call_ms": profiled, "call_overhead": profiled / timed,
               "pass_wall_s": statistics.median(pass_s), "pass_over_timed": statistics.median(pass_s) * 1e3 / timed,
               "attributed_over_profiled": added, "shares": shares, "load_1min": os.getloadavg()[0]}
        rows.append(row)
        print(f"L={length:>6,}: timed {timed:8.2f} ms (n={point.latency_ms.n}), profiled call {profiled:8.2f} ms "
              f"({profiled / timed:.2f}×), whole pass {row['pass_wall_s']:.2f} s ({row['pass_over_timed']:.1f}× a "
              f"timed call), sum/profiled {added:.3f}, attention {100 * shares['attention']:.1f} %, "
              f"load {row['load_1min']:.2f}")
    _common.write_result(args.out, {"benchmark": "breakdown_overhead", "model": args.model, "device": args.device,
                                    "device_name": _common.device_label(str(loaded.device)),
                                    "rounds": args.rounds, "threads": torch.get_num_threads(), "rows": rows})


if __name__ == "__main__":
    main()
