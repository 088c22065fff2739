"""Live progress on stderr and the summary table on stdout (rich)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from ctxscope.core.events import Progress as ProgressEvent
from ctxscope.core.machine.interference import contention_summary
from ctxscope.core.results import Point, RunHeader, RunResult
from ctxscope.report.fmt import fmt_bytes, fmt_count, fmt_ms, fmt_seconds


def points_table(points: tuple[Point, ...] | list[Point], title: str | None = None) -> Table:
    from ctxscope.report.compare import PEAK_MEANINGS, PEAK_NAMES, PROCESS_PEAK, PROCESS_PEAK_MEANING, peak_bytes

    # One name per measure, the same as reports and comparisons: the allocator peak on a
    # GPU, the model peak on a CPU, and there the process's RSS beside it, named apart.
    on_gpu = any(p.memory is not None and p.memory.peak_allocated_bytes is not None for p in points)
    with_state = any(p.memory is not None and p.memory.state_bytes for p in points)
    offload = any(p.memory is not None and p.memory.kv_host_bytes is not None for p in points)
    kind = "allocator" if on_gpu else "model"
    caption = f"{PEAK_NAMES[kind]}: {PEAK_MEANINGS[kind]}"
    if not on_gpu:
        caption += f"\n{PROCESS_PEAK}: {PROCESS_PEAK_MEANING}"
    if with_state:
        caption += "\nstate: recurrent and convolution state of state-space / linear-attention layers (fixed in L)"
    if offload:
        caption += ("\nKV on host: the part of the KV cache kept in host memory (--cache offload: device memory freed); "
                    "moved/token: host↔device bytes of one decode step")
    contended = contention_summary(points)
    if contended:  # what else ran while those points were timed: one line, not one per point
        caption += "\n" + contended
    table = Table(title=title, show_lines=False, caption=caption, caption_justify="left")
    columns = [("mode", "left"), ("length", "right"), ("status", "left"), ("median", "right"),
               ("p10–p90", "right"), ("n", "right"), ("tokens/s", "right"), ("KV cache", "right")]
    columns += [("state", "right")] if with_state else []
    columns += [("KV on host", "right"), ("moved/token", "right")] if offload else []
    columns += [("activations", "right"), (PEAK_NAMES[kind], "right")]
    columns += [] if on_gpu else [(PROCESS_PEAK, "right")]
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for p in points:
        lat, mem = p.latency_ms, p.memory
        status = p.status if p.status == "ok" else f"[red]{p.status}[/red]"
        if p.contention:
            status = "ok [yellow]contended[/yellow]"
        spread = f"{fmt_ms(lat.p10)} – {fmt_ms(lat.p90)}" + (" [yellow]noisy[/yellow]" if lat.noisy else "") if lat else "-"
        row = [p.mode, str(p.length), status, fmt_ms(lat.median) if lat else "-", spread,
               str(lat.n) if lat else "-", f"{p.tokens_per_s:,.1f}" if p.tokens_per_s else "-",
               fmt_bytes(mem.kv_cache_bytes) if mem else "-"]
        row += [fmt_bytes(mem.state_bytes) if mem else "-"] if with_state else []
        row += [fmt_bytes(mem.kv_host_bytes if mem else None),
                fmt_bytes(mem.kv_traffic_bytes if mem else None)] if offload else []
        row += [fmt_bytes(mem.activation_bytes) if mem else "-", fmt_bytes(peak_bytes(mem))]
        row += [] if on_gpu else [fmt_bytes(mem.peak_rss_bytes if mem else None)]
        table.add_row(*row)
    return table


class SweepDisplay:
    """What ``ctxscope sweep`` shows while it runs. Progress goes to stderr so stdout
    holds only results."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.err = Console(stderr=True, highlight=False)
        self.out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("ETA {task.fields[eta]}"), console=self.err, transient=True,
                            disable=quiet or not self.err.is_terminal)
        self.task: Any = None

    def __enter__(self) -> SweepDisplay:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def status(self, text: str, *, always: bool = False) -> None:
        """A transient note ("loading …"); only on a terminal unless ``always``, so a
        script that hits bad input reads exactly one line on stderr."""
        if not self.quiet and (always or self.err.is_terminal):
            self.err.print(f"[dim]{text}[/dim]")

    def started(self, header: RunHeader) -> None:
        m, s = header.model, header.settings
        if not self.quiet:
            weights = " [yellow](random weights)[/yellow]" if m.random_weights else ""
            self.err.print(f"run [bold]{header.id}[/bold]: {m.source} — {m.architecture}, {fmt_count(m.params)} params"
                           f"{weights}; {s.device} {s.dtype} {s.attn_implementation}, batch {s.batch_size}")
        if header.environment.host is None:  # measured here: this CPU's instructions decide
            from ctxscope.core.machine.devices import emulated_dtype_note

            note = emulated_dtype_note(s.device, s.dtype)
            if note:
                self.err.print(f"[yellow]warning:[/yellow] {note}")
        self.task = self.bar.add_task("starting", total=len(s.lengths) * len(s.modes), eta="?")

    def progress(self, event: ProgressEvent) -> None:
        # The plan's own count: attention and quality passes are points of the plan too.
        self.bar.update(self.task, total=event.total, completed=event.done,
                        description=f"{event.mode} L={event.length}", eta=fmt_seconds(event.eta_s))
        if not self.quiet and not self.err.is_terminal:
            print(f"[{event.done + 1}/{event.total}] {event.mode} L={event.length} (ETA {fmt_seconds(event.eta_s)})",
                  file=sys.stderr, flush=True)

    def point(self, point: Point) -> None:
        if self.quiet:
            return
        if point.status == "ok" and point.latency_ms is not None:
            mem = point.memory
            self.err.print(f"  {point.mode:7s} L={point.length:<7d} {fmt_ms(point.latency_ms.median):>10s} "
                           f"(n={point.latency_ms.n}) KV {fmt_bytes(mem.kv_cache_bytes if mem else None)}")
        else:
            self.err.print(f"  {point.mode:7s} L={point.length:<7d} [red]{point.status}[/red]: {point.error}")

    def attention(self, result: Any) -> None:
        if self.quiet:
            return
        if result.status != "ok":
            self.err.print(f"  attention L={result.length:<7d} [red]{result.status}[/red]: {result.error}")
            return
        layers = result.capture.layers
        sinks = [v for la in layers for v in la.stats["sink_mass"]]
        ents = [v for la in layers for v in la.stats["entropy"]]
        without = result.capture.without_attention
        others = f"; {len(without)} other layers have no attention map" if without else ""
        self.err.print(f"  attention L={result.length:<7d} {len(layers)} layers × {len(sinks) // max(1, len(layers))} "
                       f"heads captured; mean sink mass {sum(sinks) / len(sinks):.3f}, "
                       f"mean normalised entropy {sum(ents) / len(ents):.3f}{others}")

    def summary(self, run: RunResult, *, stored: bool, out_json: Path | None) -> None:
        from rich.markup import escape

        self.out.print(points_table(run.points, title=f"{run.header.model.source} — run {run.id} ({run.status})"))
        unmeasured = [p for p in run.points if p.status != "ok"]
        for p in unmeasured[:10]:  # the table has the status; here is why
            self.out.print(f"{p.mode} L={p.length}: {p.status} — {escape(p.error or '')}")
        if len(unmeasured) > 10:
            self.out.print(f"… and {len(unmeasured) - 10} more points not measured (see runs show {run.id})")
        if run.header.model.random_weights:
            self.out.print("Random weights: latency and memory are valid; outputs and attention are not meaningful.")
        if run.header.environment.mixer_fallback:
            self.out.print(f"Kernels: {escape(run.header.environment.mixer_fallback)}.")
        where = [f"stored as {run.id}"] if stored else []
        if out_json is not None:
            where.append(f"written to {out_json}")
        if where:
            self.out.print("Run " + ", ".join(where) + ".")


def comparison_tables(cmp: Any) -> None:
    """Print a comparison: the runs, then per mode median latency and ratio per length."""
    from rich.markup import escape

    from ctxscope.report.compare import fmt_ratio

    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    runs = Table(title="runs")
    for col in ("", "run", "configuration", "status", "longest length that ran"):
        runs.add_column(col)
    for i, run in enumerate(cmp.runs):
        longest = ", ".join(f"{m} {cmp.max_ok[i][m] or 'none'}" for m in cmp.modes)
        tag = " (baseline)" if i == cmp.baseline else ""
        runs.add_row(chr(65 + i) if i < 26 else str(i + 1), escape(cmp.labels[i]) + tag, escape(cmp.keys[i].describe()),
                     run.status, longest)
    console.print(runs)
    for note in cmp.differences:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    from ctxscope.report.crossover import crossovers, describe

    for c in crossovers(cmp):  # where a run becomes cheaper (or dearer) than the baseline
        console.print(f"[cyan]crossover:[/cyan] {escape(describe(c, cmp))}")
    for mode in cmp.modes:
        table = Table(title=f"{mode}: median latency (ratio to baseline; above 1 is slower)")
        table.add_column("length", justify="right")
        for i in range(len(cmp.runs)):
            table.add_column(chr(65 + i) if i < 26 else str(i + 1), justify="right")
        for row in cmp.rows_of(mode):
            cells = []
            for i, c in enumerate(row.cells):
                if c.median_ms is None:
                    cells.append(f"[red]{c.status}[/red]" if c.status else "-")
                elif i == cmp.baseline:
                    cells.append(fmt_ms(c.median_ms))
                else:
                    cells.append(f"{fmt_ms(c.median_ms)} ({fmt_ratio(c.latency_ratio)})")
            table.add_row(str(row.length), *cells)
        console.print(table)
    from ctxscope.cli.kv_display import kv_tables

    kv_tables(cmp.runs)  # runs that differ by their cache strategy only: the one view of what it buys
