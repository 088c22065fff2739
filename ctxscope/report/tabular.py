"""CSV export: one row per point, units in the column names."""

from __future__ import annotations

import csv
import io

from ctxscope.core.results import RunResult
from ctxscope.report.breakdown import BREAKDOWN_COLUMNS, breakdown_values
from ctxscope.report.quality import CSV_COLUMNS, csv_values

COLUMNS = (
    "run_id", "model", "device", "dtype", "attn_implementation", "mode", "length", "batch_size", "status", "error",
    "latency_median_ms", "latency_p10_ms", "latency_p90_ms", "latency_mean_ms", "latency_std_ms", "latency_n",
    "latency_noisy", "tokens_per_s", "weights_bytes", "kv_cache_bytes", "activation_bytes", "peak_allocated_bytes",
    "peak_reserved_bytes", "device_used_bytes", "peak_rss_bytes", "other_bytes", "contention",
    # Added later: appended, so scripts reading columns by position keep working.
    "state_bytes", "cpu_allocator_peak_bytes",
    # What context buys at this length (quality passes; empty when not measured).
    *CSV_COLUMNS,
    "rope_scaling",  # RoPE scaling set on the config (--rope-scaling); empty: the model as trained
    # Where the time went (--breakdown; a separate profiled pass, ms per call): empty when not measured.
    *BREAKDOWN_COLUMNS,
    # --cache offload: the KV bytes kept in host memory, host↔device bytes of one decode step.
    "kv_host_bytes", "kv_traffic_bytes",
)


def run_to_rows(run: RunResult) -> list[dict[str, object]]:
    s = run.header.settings
    quality = csv_values(run)
    rows = []
    for p in run.points:
        lat, mem = p.latency_ms, p.memory
        rows.append({
            "run_id": run.id, "model": run.header.model.source, "device": s.device, "dtype": s.dtype,
            "attn_implementation": s.attn_implementation, "mode": p.mode, "length": p.length,
            "batch_size": p.batch_size, "status": p.status, "error": p.error or "",
            "latency_median_ms": lat.median if lat else "", "latency_p10_ms": lat.p10 if lat else "",
            "latency_p90_ms": lat.p90 if lat else "", "latency_mean_ms": lat.mean if lat else "",
            "latency_std_ms": lat.std if lat else "", "latency_n": lat.n if lat else "",
            "latency_noisy": lat.noisy if lat else "", "tokens_per_s": p.tokens_per_s if p.tokens_per_s else "",
            **{f"{name}": (getattr(mem, name) if mem and getattr(mem, name) is not None else "")
               for name in ("weights_bytes", "kv_cache_bytes", "activation_bytes", "peak_allocated_bytes",
                            "peak_reserved_bytes", "device_used_bytes", "peak_rss_bytes", "other_bytes")},
            "contention": p.contention or "",
            **{name: (getattr(mem, name) if mem and getattr(mem, name) is not None else "")
               for name in ("state_bytes", "cpu_allocator_peak_bytes")},
            **{name: quality.get(p.length, {}).get(name, "") for name in CSV_COLUMNS},
            "rope_scaling": s.rope_scaling or "",
            **breakdown_values(p),
            **{name: (getattr(mem, name) if mem and getattr(mem, name) is not None else "")
               for name in ("kv_host_bytes", "kv_traffic_bytes")},
        })
    return rows


def run_to_csv(run: RunResult) -> str:
    """The run's points as CSV text (header row included)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in run_to_rows(run):
        # Spreadsheets execute cells starting with = + - @: neutralise user-controlled text.
        writer.writerow({k: ("'" + v if isinstance(v, str) and v and v[0] in "=+-@" else v) for k, v in row.items()})
    return buf.getvalue()
