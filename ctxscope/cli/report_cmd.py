"""``ctxscope report RUN... --out FILE`` and ``ctxscope compare RUN...``: reports of one
run or a comparison of several. A RUN is a run file or a stored run id (or prefix)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ctxscope.cli.common import open_store, output_path
from ctxscope.core.errors import BadInputError
from ctxscope.core.units import plural

FORMATS = ("html", "md", "json", "csv")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("report", help="write a report of one run, or a comparison of several (HTML, Markdown, ...)",
                       description="Write a self-contained report. Two or more runs make a comparison.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run file (.json) or stored run id / unique prefix")
    p.add_argument("--out", required=True, help="file to write (- for stdout)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="html, md, json or csv (default: from the --out suffix, else html)")
    p.add_argument("--baseline", type=int, default=1, help="which run the ratios are against, 1-based (default 1)")
    p.add_argument("--title", default=None, help="report title")
    p.set_defaults(func=cmd_report)
    c = sub.add_parser("compare", help="print a comparison table of two or more runs",
                       description="Align runs on (mode, length) and print latency ratios against a baseline.")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run file (.json) or stored run id / unique prefix")
    c.add_argument("--baseline", type=int, default=1, help="which run the ratios are against, 1-based (default 1)")
    c.add_argument("--format", choices=("table", "md", "json"), default="table")
    c.set_defaults(func=cmd_compare)


def resolve_runs(refs: list[str]) -> tuple[list[Any], dict[str, Path | None]]:
    """Load each RUN: an existing file, else a stored id. Returns the runs and where
    each run's attention maps are (``None`` when it has none)."""
    from ctxscope.core.serialize import load_run
    from ctxscope.store.attention_files import maps_path

    runs: list[Any] = []
    maps: dict[str, Path | None] = {}
    store = None
    try:
        for ref in refs:
            path = Path(ref).expanduser()
            if path.exists() or ref.endswith(".json") or "/" in ref:
                run = load_run(path)
                maps[run.id] = maps_path(run.id, path.parent)
            else:
                store = store or open_store()
                run = store.get_run(ref)
                maps[run.id] = maps_path(run.id)
            runs.append(run)
    finally:
        if store is not None:
            store.close()
    return runs, maps


def predictions_for(runs: list[Any]) -> dict[str, dict[int, int]]:
    """Analytic weights + KV bytes per length for runs made before sweeps recorded their
    own analytic block, when the config is at hand offline (presets and local paths);
    quietly none for the rest (a report never downloads)."""
    out: dict[str, dict[int, int]] = {}
    for run in runs:
        if (run.header.analytic or {}).get("weights_bytes") is not None:
            continue  # recorded at sweep time: the report reads it from the run itself
        source, s = run.header.model.source, run.header.settings
        local = source.startswith("preset:") or Path(source).expanduser().exists()
        if not local or s.dtype not in ("float32", "float16", "bfloat16"):
            continue
        try:
            from ctxscope.cli.estimate_cmd import estimate

            est = estimate(source, s.dtype, tuple(s.lengths), s.batch_size)
        except Exception:  # an architecture the analytic model does not describe: no overlay
            continue
        out[run.id] = {r["length"]: est["weights_bytes"] + r["kv_cache_bytes"] for r in est["lengths"]}
    return out


def _baseline(args: argparse.Namespace, count: int) -> int:
    if not 1 <= args.baseline <= count:
        raise BadInputError(f"--baseline {args.baseline}: choose 1 to {count} (the runs are numbered as given)")
    return int(args.baseline) - 1


def render(runs: list[Any], fmt: str, *, baseline: int = 0, maps: dict[str, Path | None] | None = None,
           predictions: dict[str, dict[int, int]] | None = None, title: str | None = None) -> str:
    """The report text in one of :data:`FORMATS` (CSV and JSON of several runs concatenate them)."""
    if fmt == "html":
        from ctxscope.report.html import render_html

        return render_html(runs, baseline=baseline, maps=maps, predictions=predictions, title=title)
    if fmt == "md":
        from ctxscope.report.markdown import render_markdown

        return render_markdown(runs, baseline=baseline)
    if fmt == "json":
        from ctxscope.core.serialize import dumps_run, run_to_dict

        if len(runs) == 1:
            return dumps_run(runs[0]) + "\n"
        return json.dumps([run_to_dict(r) for r in runs], indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    from ctxscope.report.tabular import run_to_csv

    return "".join(run_to_csv(r) if i == 0 else run_to_csv(r).split("\n", 1)[1] for i, r in enumerate(runs))


def format_for(fmt: str | None, out: Path | None) -> str:
    if fmt:
        return fmt
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    return {"htm": "html", "markdown": "md"}.get(suffix, suffix) if suffix in (*FORMATS, "htm", "markdown") else "html"


def cmd_report(args: argparse.Namespace) -> int:
    out = output_path(args.out, "--out")
    fmt = format_for(args.format, out)
    runs, maps = resolve_runs(args.runs)
    baseline = _baseline(args, len(runs))
    predictions = predictions_for(runs) if fmt == "html" else None
    text = render(runs, fmt, baseline=baseline, maps=maps, predictions=predictions, title=args.title)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        kind = "comparison" if len(runs) > 1 else "report"
        print(f"wrote {out} ({fmt} {kind} of {plural(len(runs), 'run')})", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ctxscope.report.compare import compare

    runs, _ = resolve_runs(args.runs)
    baseline = _baseline(args, len(runs))
    if len(runs) < 2:
        raise BadInputError("compare needs two or more runs (for one run: ctxscope runs show ID)")
    if args.format == "md":
        from ctxscope.report.markdown import render_markdown

        sys.stdout.write(render_markdown(runs, baseline=baseline))
        return 0
    cmp = compare(runs, baseline)
    if args.format == "json":
        print(json.dumps(comparison_to_dict(cmp), indent=1, allow_nan=False))
        return 0
    from ctxscope.cli.display import comparison_tables

    comparison_tables(cmp)
    return 0


def comparison_to_dict(cmp: Any) -> dict[str, Any]:
    """The comparison as plain JSON data (``ctxscope.compare/1``)."""
    from dataclasses import asdict

    return {"schema": "ctxscope.compare/1", "baseline": cmp.baseline,
            "runs": [{"id": r.id, "label": lab, "key": asdict(k), "max_ok_length": mo, "first_oom_length": fo}
                     for r, lab, k, mo, fo in zip(cmp.runs, cmp.labels, cmp.keys, cmp.max_ok, cmp.first_oom)],
            "differences": list(cmp.differences),
            "rows": [{"mode": row.mode, "length": row.length, "cells": [asdict(c) for c in row.cells]}
                     for row in cmp.rows]}
