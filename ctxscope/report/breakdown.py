"""The breakdown in reports: CSV columns, a Markdown table and the crossover lines.
Reads the run file's blocks only (no torch)."""

from __future__ import annotations

from typing import Any

from ctxscope.core.breakdown import COMPONENT_LABELS, COMPONENTS
from ctxscope.core.breakdown.crossover import breakdown_points, describe
from ctxscope.core.results import Point, RunResult

BREAKDOWN_COLUMNS = (*(f"breakdown_{k}_ms" for k in COMPONENTS), "breakdown_total_ms", "breakdown_attributed_ms",
                     "breakdown_overhead", "breakdown_clock", "breakdown_error")


def breakdown_values(point: Point) -> dict[str, object]:
    """A point's breakdown as CSV cells (all empty without one)."""
    b = point.breakdown
    if not b:
        return dict.fromkeys(BREAKDOWN_COLUMNS, "")
    parts = b.get("components_ms") or {}
    out: dict[str, object] = {f"breakdown_{k}_ms": parts.get(k, "") for k in COMPONENTS}
    over = b.get("overhead")
    out.update(breakdown_total_ms=b.get("total_ms", ""), breakdown_attributed_ms=b.get("attributed_ms", ""),
               breakdown_overhead="" if over is None else over, breakdown_clock=b.get("clock", ""),
               breakdown_error=b.get("error") or "")
    return out


def has_breakdown(run: RunResult) -> bool:
    return any(p.breakdown for p in run.points)


def crossover_lines(run: RunResult) -> list[str]:
    """One line per mode with a breakdown: measured crossover beside the analytic one."""
    return [describe(run, mode) for mode in run.header.settings.modes if breakdown_points(run, mode)]


def shares(run: RunResult, mode: str) -> tuple[list[int], dict[str, list[float]]]:
    """Lengths and, per component, its share of the attributed time (0–1) at each."""
    pairs = breakdown_points(run, mode)
    lengths = [p.length for p, _ in pairs]
    out: dict[str, list[float]] = {k: [] for k in COMPONENTS}
    for _, b in pairs:
        parts = b.get("components_ms") or {}
        whole = sum(parts.get(k, 0.0) for k in COMPONENTS) or 1.0
        for k in COMPONENTS:
            out[k].append(parts.get(k, 0.0) / whole)
    return lengths, out


def markdown_table(run: RunResult) -> list[str]:
    """Per mode: L, the profiled total and each component's share; then the crossovers."""
    lines: list[str] = []
    for mode in run.header.settings.modes:
        pairs = breakdown_points(run, mode)
        if not pairs:
            continue
        used = [k for k in COMPONENTS if any((b.get("components_ms") or {}).get(k, 0.0) > 0 for _, b in pairs)]
        lines += [f"**{mode}** ({'per token' if mode == 'decode' else 'per pass'}, share of the profiled time)", "",
                  "| L | profiled ms | " + " | ".join(COMPONENT_LABELS[k] for k in used) + " | overhead |",
                  "|---:|---:|" + "---:|" * len(used) + "---:|"]
        _, split = shares(run, mode)
        for i, (p, b) in enumerate(pairs):
            over = b.get("overhead")
            lines.append(f"| {p.length:,} | {b.get('total_ms', 0.0):.2f} | "
                         + " | ".join(f"{100 * split[k][i]:.1f} %" for k in used)
                         + f" | {'' if over is None else f'{over:.2f}×'} |")
        lines.append("")
    lines += [f"- {line}" for line in crossover_lines(run)]
    return lines


#: One colour per component, shared by the report and the app (bottom of the stack first).
COLOURS = {"attention": "#d62728", "projections": "#ff7f0e", "mlp": "#1f77b4", "recurrent": "#27ae60",
           "norms": "#9467bd", "embeddings_head": "#8c564b", "other": "#95a5a6"}


def share_svg(run: RunResult, mode: str, *, title: str) -> str | None:
    """Each component's share of the profiled time vs L, stacked (``None``: no breakdown)."""
    from ctxscope.report.axes import legend, length_axis
    from ctxscope.report.charts import _figure, _styled, _to_svg

    @_styled
    def draw() -> str | None:
        lengths, split = shares(run, mode)
        if not lengths:
            return None
        used = [k for k in COMPONENTS if any(split[k])]
        fig, ax = _figure()
        values = [[100 * v for v in split[k]] for k in used]
        if len(lengths) == 1:  # a stacked area of one length has no width: one stacked bar
            bottom = 0.0
            for k, v in zip(used, values):
                ax.bar(lengths, v, width=lengths[0] * 0.35, bottom=bottom, color=COLOURS[k], label=COMPONENT_LABELS[k])
                bottom += v[0]
            ax.set_xlim(lengths[0] / 2, lengths[0] * 2)
        else:
            ax.stackplot(lengths, *values, labels=[COMPONENT_LABELS[k] for k in used],
                         colors=[COLOURS[k] for k in used], alpha=0.9)
        ax.set_ylim(0, 100)
        length_axis(ax, lengths)
        ax.set_ylabel("share of profiled time (%)")
        ax.set_title(title)
        legend(ax, fontsize=7, loc="upper left", ncol=2)
        return _to_svg(fig)

    return draw()


def section(runs: list[RunResult], labels: list[str]) -> list[dict[str, Any]]:
    """The report's breakdown section: per run with one, its charts and crossover lines."""
    out: list[dict[str, Any]] = []
    for run, label in zip(runs, labels):
        if not has_breakdown(run):
            continue
        figs = [share_svg(run, mode, title=f"{mode}: where the time goes ({'per token' if mode == 'decode' else 'per pass'})")
                for mode in run.header.settings.modes]
        clocks = {b.get("clock") for p in run.points if (b := p.breakdown)} - {None}
        out.append({"label": label, "figures": [f for f in figs if f], "lines": crossover_lines(run),
                    "clock": ", ".join(sorted(str(c) for c in clocks))})
    return out
