"""The breakdown in the terminal: per mode, each length's split (ms and share), whether
the components add up, the profiler's overhead, and the crossover line."""

from __future__ import annotations

from ctxscope.core.breakdown import COMPONENT_LABELS, COMPONENTS
from ctxscope.core.breakdown.crossover import breakdown_points, describe
from ctxscope.core.results import RunResult

_SHORT = {"attention": "attn", "projections": "qkvo", "mlp": "mlp", "recurrent": "mixer", "norms": "norm",
          "embeddings_head": "emb+head", "other": "other"}


def breakdown_lines(run: RunResult) -> list[str]:
    """The lines :func:`breakdown_tables` prints (empty without a breakdown)."""
    if not run.header.settings.breakdown:
        return []
    lines: list[str] = []
    for mode in run.header.settings.modes:
        pairs = breakdown_points(run, mode)
        failed = [p for p in run.ok_points(mode) if p.breakdown and p.breakdown.get("error")]
        if not pairs and not failed:
            continue
        clock = pairs[0][1].get("clock", "cpu") if pairs else "cpu"
        unit = "per token" if mode == "decode" else "per pass"
        lines.append(f"where the time goes — {mode} ({unit}, profiled {clock} time; % of the profiled total)")
        used = [k for k in COMPONENTS if any(b.get("components_ms", {}).get(k, 0.0) > 0 for _, b in pairs)]
        head = f"{'L':>8} {'total ms':>9} " + " ".join(f"{_SHORT[k]:>8}" for k in used) + f" {'sum/total':>9} {'overhead':>8}"
        lines.append(head)
        for p, b in pairs:
            parts = b.get("components_ms", {})
            total = b.get("total_ms", 0.0)
            shares = " ".join(f"{100 * parts.get(k, 0.0) / total:>7.1f}%" if total else f"{'—':>8}" for k in used)
            added = f"{b.get('attributed_ms', 0.0) / total:>9.3f}" if total else f"{'—':>9}"
            over = b.get("overhead")
            lines.append(f"{p.length:>8,} {total:>9.2f} {shares} {added} " + (f"{over:>7.2f}×" if over else f"{'—':>8}"))
        for p in failed:
            lines.append(f"{p.length:>8,} profiled pass failed: {p.breakdown.get('error') if p.breakdown else ''}")
        lines.append("  " + describe(run, mode))
    if lines:
        lines.append("  (" + ", ".join(f"{_SHORT[k]} = {COMPONENT_LABELS[k]}" for k in COMPONENTS) + ")")
    return lines


def breakdown_tables(run: RunResult) -> None:
    """Print the breakdown of ``run`` (nothing when it was measured without one)."""
    for line in breakdown_lines(run):
        print(line)
