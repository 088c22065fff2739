"""Self-contained HTML reports of one run or a comparison of several.

One file, no network: charts are inline SVG, thumbnails inline PNG data URIs, the CSS
is in the page and there is no script that runs. Every user-controlled string goes
through Jinja2's autoescaping; the raw run data is embedded as inert JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ctxscope
from ctxscope.core.errors import BadInputError
from ctxscope.core.machine.interference import contention_summary
from ctxscope.core.results import RunResult
from ctxscope.core.serialize import run_to_dict
from ctxscope.report import attention_charts, charts
from ctxscope.report.attention_summary import captured_lengths, ok_entries, pick_lengths, thumbnails
from ctxscope.report.compare import (PROCESS_PEAK, Comparison, compare, fmt_ratio, notes_heading, peak_bytes,
                                     peak_heading, peak_note)
from ctxscope.core.predict.efficiency import fit_note, fit_run, point_efficiency, predicted_latency, predicted_memory
from ctxscope.report.crossover import crossovers
from ctxscope.report.crossover import describe as describe_crossover
from ctxscope.report.fmt import fmt_bytes, fmt_count, fmt_layer_mix, fmt_ms, fmt_rate, plural
from ctxscope.report.breakdown import section as breakdown_section
from ctxscope.report.kv_view import section as kv_section
from ctxscope.report.quality import section as quality_section

if TYPE_CHECKING:
    import jinja2

MODE_TITLES = {"prefill": "Prefill (whole prompt, one call)", "decode": "Decode (one token at depth L)",
               "forward": "Forward (encoder, whole input)"}


def _environment() -> jinja2.Environment:
    import jinja2

    from ctxscope._resources import resource_path

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_path("report"))),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _capacity(run: RunResult) -> tuple[int | None, str]:
    env = run.header.environment
    if env.gpu_memory_bytes:
        return env.gpu_memory_bytes, "device memory"
    return env.memory_bytes, "system memory"


def _run_facts(run: RunResult, label: str, colour: str) -> dict[str, Any]:
    m, s, e = run.header.model, run.header.settings, run.header.environment
    gpu = f"{e.gpu_name} ({fmt_bytes(e.gpu_memory_bytes)}), driver {e.driver}, CUDA {e.cuda}" if e.gpu_name else "none"
    return {
        "id": run.id, "label": label, "colour": colour, "status": run.status, "random_weights": m.random_weights,
        "rows": [
            ("model", m.source + (f" @ {m.revision}" if m.revision else "")),
            ("architecture", f"{m.architecture} ({m.model_type})"),
            ("parameters", f"{m.params:,} ({fmt_count(m.params)})"
                           + (f"; {m.active_params:,} ({fmt_count(m.active_params)}) active per token: a mixture of "
                              "experts" if m.active_params else "")),
            *([("layers", fmt_layer_mix(m.layer_kinds))] if fmt_layer_mix(m.layer_kinds) else []),
            ("shape", f"{m.num_layers} layers, hidden {m.hidden_size}, {m.num_heads} heads / {m.num_kv_heads} KV heads "
                      f"× {m.head_dim}" + (f", sliding window {m.sliding_window}" if m.sliding_window else "")),
            ("weights", "random (latency and memory valid; attention maps not meaningful)" if m.random_weights
             else "checkpoint"),
            *([("recurrent layers", e.mixer_fallback)] if e.mixer_fallback else []),
            ("device / dtype / attention", f"{s.device} · {s.dtype} · {s.attn_implementation}"
                                           + (f" · device_map={s.device_map}" if s.device_map else "")),
            ("batch / lengths", f"{s.batch_size} / {', '.join(str(n) for n in s.lengths)}"),
            ("repeats", f"warm-up {s.warmup}, {s.min_repeats}–{s.max_repeats} timed calls, ≤ {s.budget_s:g} s per "
                        f"point, stop at IQR/median < {s.target_rel_iqr:g}; timer {s.timer}"
                        + (f"; {plural(s.threads, 'CPU thread')}" if s.threads else "")),
            ("GPU", gpu),
            ("CPU / system", f"{e.cpu}, {e.cpu_count or '?'} cores, {fmt_bytes(e.memory_bytes)} RAM; {e.platform}"),
            *((("measured on", e.host),) if e.host else ()),  # a remote host or a Ray node
            ("software", f"Python {e.python}, torch {e.torch}, transformers {e.transformers}, ctxscope {e.ctxscope}"),
            ("created", run.header.created.replace("T", " ")[:19] + " UTC" + (f", status {run.status}")),
        ],
    }


def _overlay(run: RunResult, mode: str) -> charts.Overlay:
    return charts.Overlay(predicted=predicted_latency(run.header, mode), fit=fit_run(run, mode))


def _fits(runs: Sequence[RunResult], labels: Sequence[str]) -> list[dict[str, str]]:
    """One row per run and mode that ran: the coefficients with their standard errors,
    or why there is no fit worth showing (too few lengths, impossible coefficients)."""
    out = []
    for run, label in zip(runs, labels):
        for mode in dict.fromkeys(p.mode for p in run.points):
            if not run.ok_points(mode):
                continue
            fit = fit_run(run, mode)
            row = {"label": label, "mode": mode, "a": "-", "b": "-", "c": "-", "r2": "-", "crossover": "-",
                   "n": str(len({p.length for p in run.ok_points(mode)})), "note": fit_note(run, mode, fit) or ""}
            if fit is not None:
                a_err, b_err, c_err = fit.errors
                row.update(a=f"{fit.a:.4g} ± {a_err:.2g}", b=f"{fit.b:.4g} ± {b_err:.2g}",
                           c=f"{fit.c:.4g} ± {c_err:.2g}", r2=f"{fit.r2:.4f}" if fit.physical else "-",
                           crossover=f"{fit.crossover:,.0f}" if fit.crossover else
                           "-" if not fit.physical else "none (no significant c·L²)")
            out.append(row)
    return out


def _points_rows(run: RunResult, predicted: Mapping[int, int] | None) -> list[dict[str, str | bool]]:
    rows: list[dict[str, str | bool]] = []
    predicted = predicted_memory(run.header) or predicted
    for p in run.points:
        lat, mem = p.latency_ms, p.memory
        peak = peak_bytes(mem) if p.status == "ok" else None
        pred = predicted.get(p.length) if predicted else None
        eff = point_efficiency(run, p)
        util = (f"MFU {eff.mfu:.1%}" if eff.mfu is not None else
                f"bandwidth {eff.bandwidth_util:.1%}" if eff.bandwidth_util is not None else "-")
        note = p.error or ""
        if p.contention:  # why: said once under the table (contention_summary)
            note = (note + " " if note else "") + "contended."
        if eff.memory_departure is not None:
            note = (note + " " if note else "") + (f"memory: weights + KV {eff.memory_departure:+.0%} vs predicted")
        rows.append({
            "mode": p.mode, "length": f"{p.length:,}", "status": p.status,
            "median": fmt_ms(lat.median) if lat else "-",
            "band": f"{fmt_ms(lat.p10)} – {fmt_ms(lat.p90)}" if lat else "-", "n": str(lat.n) if lat else "-",
            "noisy": bool(lat and lat.noisy),
            "tps": f"{p.tokens_per_s:,.1f}" if p.tokens_per_s else "-",
            "weights": fmt_bytes(mem.weights_bytes) if mem else "-", "kv": fmt_bytes(mem.kv_cache_bytes) if mem else "-",
            "state": fmt_bytes(mem.state_bytes) if mem and mem.state_bytes is not None else "-",
            "act": fmt_bytes(mem.activation_bytes) if mem else "-", "peak": fmt_bytes(peak),
            "rss": fmt_bytes(mem.peak_rss_bytes) if mem and mem.peak_rss_bytes is not None else "-",
            "predicted": fmt_bytes(pred) if pred is not None else "-", "note": note,
            "roofline": fmt_ms(eff.predicted_ms) if eff.predicted_ms is not None else "-", "util": util,
        })
    return rows


def _telemetry_rows(run: RunResult) -> list[dict[str, str]]:
    def f(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    rows = []
    for p in run.points:
        t = p.telemetry
        if not t:
            continue
        rows.append({"mode": p.mode, "length": f"{p.length:,}", "samples": str(t.get("samples", "-")),
                     "util": f(t.get("gpu_util_mean_percent"), ".0f"), "power": f(t.get("power_mean_w"), ".0f"),
                     "power_max": f(t.get("power_max_w"), ".0f"), "temp": f(t.get("temperature_max_c"), ".0f"),
                     "clock": f(t.get("sm_clock_mean_mhz"), ".0f"), "cpu": f(t.get("cpu_percent_mean"), ".0f"),
                     "rss": fmt_bytes(t.get("rss_max_bytes"))})
    return rows


def _glance(cmp: Comparison) -> list[dict[str, Any]]:
    """Per mode and run: the largest length that ran, the first OOM, and the latency
    ratio at the longest length every run measured."""
    out = []
    for mode in cmp.modes:
        common = [r for r in cmp.rows_of(mode) if all(c.median_ms is not None for c in r.cells)]
        at = common[-1] if common else None
        for i, label in enumerate(cmp.labels):
            cell = at.cells[i] if at else None
            out.append({"mode": mode, "label": label, "colour": charts.PALETTE[i % len(charts.PALETTE)],
                        "max_ok": f"{cmp.max_ok[i][mode]:,}" if cmp.max_ok[i][mode] else "none",
                        "first_oom": f"{cmp.first_oom[i][mode]:,}" if cmp.first_oom[i][mode] else "-",
                        "at": f"{at.length:,}" if at else "-", "median": fmt_ms(cell.median_ms) if cell else "-",
                        "ratio": fmt_ratio(cell.latency_ratio) if cell else "-",
                        "peak": fmt_bytes(cell.peak_bytes) if cell else "-", "baseline": i == cmp.baseline})
    return out


def _compare_tables(cmp: Comparison) -> list[dict[str, Any]]:
    tables = []
    for mode in cmp.modes:
        rows = []
        for r in cmp.rows_of(mode):
            medians = [c.median_ms for c in r.cells if c.median_ms is not None]
            best = min(medians) if len(medians) > 1 else None
            cells = [{"median": fmt_ms(c.median_ms) if c.median_ms is not None else (c.status or "not run"),
                      "ratio": fmt_ratio(c.latency_ratio), "peak": fmt_bytes(c.peak_bytes),
                      "best": best is not None and c.median_ms == best, "failed": c.status not in (None, "ok")}
                     for c in r.cells]
            rows.append({"length": f"{r.length:,}", "cells": cells})
        tables.append({"mode": mode, "title": MODE_TITLES.get(mode, mode), "rows": rows})
    return tables


def _peak_text(run: RunResult) -> str:
    peak = (run.header.analytic or {}).get("peak")
    if not peak:
        return ("no peak figures for this device (run `ctxscope env --probe` there): no roofline or utilisation"
                if run.header.analytic else "run made before analytic predictions were recorded")
    flops = (peak.get("flops") or {}).get(run.header.settings.dtype)
    return (f"roofline and utilisation against {peak.get('name')}: "
            f"{fmt_rate(flops) if flops else 'no ' + run.header.settings.dtype + ' figure'}, "
            f"{fmt_rate(peak.get('bytes_per_s'), 'B/s')} ({peak.get('source')})")


def _inert_json(data: Any) -> str:
    # Inside <script type="application/json"> only "</script" could end the block;
    # escaping every <, > and & keeps any user text inert.
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(runs: Sequence[RunResult], *, baseline: int = 0, maps: Mapping[str, Path | None] | None = None,
                predictions: Mapping[str, Mapping[int, int]] | None = None, title: str | None = None) -> str:
    """The report as one HTML document. ``maps[run_id]`` is that run's ``.npz`` (for
    attention thumbnails); ``predictions[run_id]`` the analytic weights + KV bytes per
    length (drawn dashed on the memory chart)."""
    problem = charts.missing_dependency()
    if problem:
        raise BadInputError(problem)
    if not runs:
        raise BadInputError("nothing to report: give at least one run")
    cmp = compare(list(runs), baseline)
    maps, predictions = maps or {}, predictions or {}
    colours = [charts.PALETTE[i % len(charts.PALETTE)] for i in range(len(runs))]
    single = len(runs) == 1
    sections: list[dict[str, Any]] = []
    for mode in cmp.modes:
        series = [charts.Series(cmp.labels[i], colours[i], tuple(p for p in r.points if p.mode == mode))
                  for i, r in enumerate(runs)]
        overlays = [_overlay(r, mode) for r in runs]
        figs = [charts.latency_svg(series, mode, title=f"{mode} latency (median, band p10–p90)",
                                   overlays=overlays if single else None)]
        if not single:
            figs.append(charts.ratio_svg(cmp, mode, title=f"{mode}: latency relative to {cmp.labels[baseline]}"))
            figs.append(charts.peak_memory_svg(cmp, mode, title=f"{mode}: {peak_heading(runs)}"))
        else:
            cap, cap_label = _capacity(runs[0])
            figs.append(charts.memory_svg(series[0].points, title=f"{mode}: memory by component", capacity=cap,
                                          capacity_label=cap_label,
                                          predicted=predicted_memory(runs[0].header) or dict(predictions.get(runs[0].id) or {})))
        # A chart with no data (a prefill-only run's decode ratio) is left out, not drawn empty.
        sections.append({"mode": mode, "title": MODE_TITLES.get(mode, mode), "figures": [f for f in figs if f]})
    throughput = charts.throughput_svg(
        [(charts.Series(cmp.labels[i], colours[i], tuple(p for p in r.points if p.mode == m)), m)
         for i, r in enumerate(runs) for m in cmp.modes], title="throughput (tokens per second)")
    with_attention = [r for r in runs if ok_entries(r)]
    common = set.intersection(*(set(captured_lengths(r)) for r in with_attention)) if with_attention else set()
    attention = []
    for i, r in enumerate(runs):
        if not r.attention:
            continue
        shown = pick_lengths(sorted(common) if len(with_attention) > 1 and common else captured_lengths(r))
        thumbs, note = thumbnails(r, maps.get(r.id), shown)
        failed = [e for e in r.attention if isinstance(e, dict) and e.get("status") not in ("ok", None)]
        attention.append({"label": cmp.labels[i], "colour": colours[i], "random_weights": r.header.model.random_weights,
                          "stats": attention_charts.attention_stats_svg(ok_entries(r), title="attention statistics vs L")
                          if ok_entries(r) else None,
                          "thumbs": thumbs, "note": note,
                          "failed": [f"L={e.get('length')}: {e.get('status')} {e.get('error') or ''}" for e in failed]})
    from markupsafe import Markup

    context = {
        "title": title or (f"ctxscope — {cmp.labels[0]}" if single else f"ctxscope — {len(runs)} runs compared"),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "version": ctxscope.__version__,
        "single": single, "runs": [_run_facts(r, cmp.labels[i], colours[i]) for i, r in enumerate(runs)],
        "baseline": cmp.labels[baseline], "differences": cmp.differences, "notes_heading": notes_heading(runs),
        "glance": _glance(cmp), "crossovers": [describe_crossover(c, cmp) for c in crossovers(cmp)],
        "sections": [{**s, "figures": [Markup(f) for f in s["figures"]]} for s in sections],
        "throughput": Markup(throughput) if throughput else None, "compare_tables": _compare_tables(cmp),
        "peak_heading": peak_heading(runs), "peak_note": peak_note(runs), "process_peak": PROCESS_PEAK,
        "points": [{"label": cmp.labels[i], "colour": colours[i],
                    "rows": _points_rows(r, predictions.get(r.id)), "telemetry": _telemetry_rows(r),
                    "has_predicted": bool(predicted_memory(r.header) or predictions.get(r.id)),
                    "peak_heading": peak_heading([r]), "peak_note": peak_note([r]),
                    "has_rss": any(p.memory is not None and p.memory.peak_rss_bytes is not None for p in r.points),
                    "has_state": any(p.memory is not None and p.memory.state_bytes for p in r.points),
                    "peak": _peak_text(r), "contended": contention_summary(r.points)} for i, r in enumerate(runs)],
        "fits": _fits(runs, cmp.labels),
        "attention": [{**a, "stats": Markup(a["stats"]) if a["stats"] else None} for a in attention],
        "any_random": any(r.header.model.random_weights for r in runs),
        "raw_json": Markup(_inert_json([run_to_dict(r) for r in runs])),
        "quality": quality_section(runs, cmp.labels, colours, baseline),
        "breakdown": [{**b, "figures": [Markup(f) for f in b["figures"]]}
                      for b in breakdown_section(list(runs), list(cmp.labels))],
        "kv": kv_section(runs),
    }
    return _environment().get_template("report.html.j2").render(**context)
