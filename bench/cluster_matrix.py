"""Cluster matrix: a 4-cell matrix (2 dtypes × 2 kernels) run serially here, then on a
local Ray cluster with as many workers as cores, in one process.

    python bench/cluster_matrix.py --out bench/results/cluster-matrix-cpu.json

Reports the cluster's start-up cost (``ray.init`` of a local cluster), the first matrix
on it (its workers import torch and transformers: part of the start-up) and a second
one on warm workers, each against the serial wall time, plus the ratio of every
point's median latency. Serially each cell has every core; on the cluster each has one
core (and one torch thread) beside the others, so CPU medians differ by design: the
cluster buys wall time, not per-call speed, on one CPU machine. Needs Ray.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time

import _common


def drain(gen) -> tuple:
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return tuple(done.value)


def medians(runs: tuple) -> dict[str, float]:
    return {f"{r.header.settings.dtype}/{r.header.settings.attn_implementation} {p.mode} {p.length}": p.latency_ms.median
            for r in runs for p in r.points if p.status == "ok"}


def main() -> None:
    from ctxscope.core.jobs.job import Job
    from ctxscope.core.lengths import parse_lengths
    from ctxscope.core.jobs.matrix import run_matrix
    from ctxscope.core.spec import ModelSpec, SweepConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="preset:gpt2")
    ap.add_argument("--lengths", default="128,256,512")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per point (fixed: wall time is comparable)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    specs = tuple(ModelSpec(args.model, device="cpu", dtype=d, attn_implementation=a)
                  for d in ("float32", "bfloat16") for a in ("sdpa", "eager"))
    cfg = SweepConfig(lengths=parse_lengths(args.lengths), min_repeats=args.repeats, max_repeats=args.repeats)

    t0 = time.perf_counter()
    serial = drain(run_matrix(specs, cfg))
    serial_s = time.perf_counter() - t0
    print(f"serial: {serial_s:.1f} s for {len(serial)} cells ({serial[0].header.settings.threads} torch threads each)")

    import ray

    from ctxscope.remote.ray_cluster import run_on_cluster

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    init_s = time.perf_counter() - t0
    job = Job("matrix", specs, cfg, strict=False)
    walls, cluster_runs = [], ()
    for _ in range(2):  # cold workers (they import torch), then warm ones
        t0 = time.perf_counter()
        cluster_runs = drain(run_on_cluster("auto", job, say=print))
        walls.append(time.perf_counter() - t0)
    ray.shutdown()
    print(f"cluster: start-up {init_s:.1f} s, first matrix {walls[0]:.1f} s, warm matrix {walls[1]:.1f} s "
          f"({args.workers} workers)")
    here, there = medians(serial), medians(cluster_runs)
    ratios = {k: there[k] / here[k] for k in here if k in there}
    summary = {"serial_s": serial_s, "cluster_init_s": init_s, "cluster_first_s": walls[0], "cluster_warm_s": walls[1],
               "ratio_warm_over_serial": walls[1] / serial_s,
               "ratio_with_startup_over_serial": (init_s + walls[0]) / serial_s,
               "median_ratio_cluster_over_serial": statistics.median(ratios.values()),
               "median_ratio_range": [min(ratios.values()), max(ratios.values())]}
    print(f"wall time, warm cluster / serial: {summary['ratio_warm_over_serial']:.2f}×; with start-up and cold "
          f"workers: {summary['ratio_with_startup_over_serial']:.2f}×; point medians cluster / serial: "
          f"{summary['median_ratio_cluster_over_serial']:.2f}× (range {min(ratios.values()):.2f}–"
          f"{max(ratios.values()):.2f})")
    _common.write_result(args.out, {"benchmark": "cluster_matrix", "model": args.model, "lengths": args.lengths,
                                    "workers": args.workers, "device": "cpu", "summary": summary,
                                    "load_average_1m_at_end": os.getloadavg()[0],
                                    "cells": [[r.header.settings.dtype, r.header.settings.attn_implementation,
                                               r.status, r.header.environment.host] for r in cluster_runs],
                                    "point_ratios": ratios})


if __name__ == "__main__":
    main()
