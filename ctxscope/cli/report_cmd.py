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
from ctxscope.report.build import FORMATS, comparison_to_dict, format_for, render

__all__ = ["FORMATS", "add_parsers", "cmd_compare", "cmd_report", "comparison_to_dict", "format_for", "render",
           "resolve_runs"]


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


def _baseline(args: argparse.Namespace, count: int) -> int:
    if not 1 <= args.baseline <= count:
        raise BadInputError(f"--baseline {args.baseline}: choose 1 to {count} (the runs are numbered as given)")
    return int(args.baseline) - 1


def cmd_report(args: argparse.Namespace) -> int:
    out = output_path(args.out, "--out")
    fmt = format_for(args.format, out)
    runs, maps = resolve_runs(args.runs)
    baseline = _baseline(args, len(runs))
    from ctxscope.core.predict.predictions import predictions_for

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
