"""A report's text from runs, in each format the front ends write (the CLI's
``report``/``sweep --html`` and the app's export alike), and the comparison schema
(``ctxscope.compare/1``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ctxscope.core.results import RunResult
from ctxscope.report.compare import Comparison

FORMATS = ("html", "md", "json", "csv")


def render(runs: Sequence[RunResult], fmt: str, *, baseline: int = 0, maps: dict[str, Path | None] | None = None,
           predictions: dict[str, dict[int, int]] | None = None, title: str | None = None) -> str:
    """The report text in one of :data:`FORMATS` (CSV and JSON of several runs
    concatenate them). ``predictions``: analytic bytes per length for runs that do not
    carry their own (:func:`ctxscope.core.predict.predictions.predictions_for`)."""
    runs = list(runs)
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
    """``fmt`` when given, else from ``out``'s suffix (``.htm``, ``.markdown`` too), else HTML."""
    if fmt:
        return fmt
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    return {"htm": "html", "markdown": "md"}.get(suffix, suffix) if suffix in (*FORMATS, "htm", "markdown") else "html"


def comparison_to_dict(cmp: Comparison) -> dict[str, Any]:
    """The comparison as plain JSON data (``ctxscope.compare/1``)."""
    return {"schema": "ctxscope.compare/1", "baseline": cmp.baseline,
            "runs": [{"id": r.id, "label": lab, "key": asdict(k), "max_ok_length": mo, "first_oom_length": fo}
                     for r, lab, k, mo, fo in zip(cmp.runs, cmp.labels, cmp.keys, cmp.max_ok, cmp.first_oom)],
            "differences": list(cmp.differences),
            "rows": [{"mode": row.mode, "length": row.length, "cells": [asdict(c) for c in row.cells]}
                     for row in cmp.rows]}
