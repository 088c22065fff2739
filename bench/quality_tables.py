"""Markdown tables of what context buys, printed from run files (or their summaries).

    python bench/quality_tables.py tasks RUN.json [RUN.json ...]   # needle rate per task and length
    python bench/quality_tables.py rope RUN.json [RUN.json ...]    # loss per context and RoPE scaling
    python bench/quality_tables.py summary RUN.json OUT.json       # the run's quality records, without raw samples

Every figure comes from the records in the files (``quality.needle`` trials and
``quality.loss`` points), pooled and judged by ctxscope's own code
(``core.quality.effective``, ``core.quality.intervals``): nothing is typed by hand.
A summary keeps the header (model, settings, environment), the prefill medians and the
quality records, so ``tasks`` and ``rope`` read it as they read the run file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the checkout on sys.path)
from ctxscope.core.quality.effective import by_length, loss_rows, pool, tasks_of
from ctxscope.core.quality.intervals import Paired
from ctxscope.core.quality.records import QualityResult, quality_from_dict

TASK_ORDER = ("single", "multikey", "multivalue", "multiquery", "vt")


def _load(path: str) -> tuple[dict[str, Any], QualityResult]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "quality" not in data:
        sys.exit(f"{path}: no quality records (run with --quality)")
    return data, quality_from_dict(data["quality"])


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def _cell(c: Any) -> str:
    if not c.n:
        return "not run"
    low, high = c.interval
    return f"{c.found}/{c.n} ({100 * low:.0f}–{100 * high:.0f} %)"


def _num(v: int) -> str:
    return f"{v:,}"


def tasks_table(paths: list[str]) -> str:
    trials = []
    for path in paths:
        trials += list(_load(path)[1].needle)
    tasks = sorted(tasks_of(trials), key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else 99)
    cells = {task: by_length(trials, task=task) for task in tasks}
    lengths = sorted({n for per in cells.values() for n in per})
    out = ["Found / trials (95 % Wilson interval), every depth pooled:", "",
           "| length | " + " | ".join(tasks) + " |", "|---:|" + "---:|" * len(tasks)]
    for n in lengths:
        out.append(f"| {_num(n)} | " + " | ".join(_cell(cells[t][n]) if n in cells[t] else "–" for t in tasks) + " |")
    recall = [t for t in tasks if t != "single"]
    if recall:
        out += ["", "Mean recall (share of the expected values in the answer) and false retrievals (a planted "
                "distractor value in the answer):", "",
                "| length | " + " | ".join(f"{t} recall · false" for t in recall) + " |",
                "|---:|" + "---:|" * len(recall)]
        for n in lengths:
            out.append(f"| {_num(n)} | " + " | ".join(
                f"{_pct(cells[t][n].recall)} · {cells[t][n].false}" if n in cells[t] else "–" for t in recall) + " |")
    adjacent = {t: pool([x for x in trials if x.kind == "adjacent" and x.task == t]) for t in tasks}
    no_key = by_length(trials, "no-key")
    wrong = by_length(trials, "wrong-key")
    out += ["", "Controls: needles right before the question, no haystack (per task); no key planted (single); "
            "a wrong key (multikey: four needles, a question about a fifth key; *found* there counts a value "
            "returned, i.e. a false retrieval):", "",
            "| control | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks),
            "| no haystack | " + " | ".join(_cell(adjacent[t]) for t in tasks) + " |"]
    for n in lengths:
        if n in no_key:
            out.append(f"| no key, {_num(n)} | {_cell(no_key[n])} |" + " – |" * (len(tasks) - 1))
        if n in wrong:
            c = wrong[n]
            out.append(f"| wrong key, {_num(n)} | – | {c.false} of {c.n} answers returned a planted value |"
                       + " – |" * (len(tasks) - 2))
    out += ["", "Pairs of tasks whose 95 % Wilson intervals do not overlap (gap: the lower task's high end to "
            "the higher task's low end):", ""]
    found_any = False
    for n in lengths:
        for a, b in itertools.combinations(tasks, 2):
            ca, cb = cells[a].get(n), cells[b].get(n)
            if not ca or not cb or not ca.n or not cb.n:
                continue
            (hi_name, hi), (lo_name, lo) = sorted(((a, ca), (b, cb)), key=lambda x: -(x[1].rate or 0))
            gap = hi.interval[0] - lo.interval[1]
            if gap > 0:
                found_any = True
                out.append(f"- {_num(n)} tokens: {hi_name} {_pct(hi.rate)} ({_pct(hi.interval[0])}–"
                           f"{_pct(hi.interval[1])}) vs {lo_name} {_pct(lo.rate)} ({_pct(lo.interval[0])}–"
                           f"{_pct(lo.interval[1])}): gap {100 * gap:.0f} points")
    if not found_any:
        out.append("- none: every pair's intervals overlap at every length")
    return "\n".join(out)


def _rope_name(data: dict[str, Any]) -> str:
    return (data.get("settings") or {}).get("rope_scaling") or "none"


def rope_table(paths: list[str]) -> str:
    order = {"none": 0, "linear": 1, "dynamic": 2, "yarn": 3}
    runs = sorted(((_rope_name(d), q) for d, q in (_load(p) for p in paths)),
                  key=lambda r: (order.get(r[0].split(":")[0], 9), r[0]))
    base = next((q for name, q in runs if name == "none"), None)
    out = ["| RoPE scaling | context | loss (nats/token) | 95 % interval over windows | perplexity | windows | "
           "vs none, paired (95 %) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, q in runs:
        by_ctx = {p.context: p for p in q.loss}
        base_ctx = {p.context: p for p in base.loss} if base is not None else {}
        for row in loss_rows(q.loss):
            if row.mean is None:
                out.append(f"| {name} | {_num(row.context)} | {row.status} | – | – | 0 | – |")
                continue
            ci = f"{row.low:.4f} – {row.high:.4f}" if row.low is not None else "–"
            vs = "–"
            b = base_ctx.get(row.context)
            if name != "none" and b is not None and b.status == "ok" and len(b.window_nll) == row.n:
                diff = Paired.of([x - y for x, y in zip(by_ctx[row.context].window_nll, b.window_nll)])
                if diff.sd == 0 and diff.mean == 0:
                    vs = "0 (the same in every window)"
                else:
                    vs = f"{diff.mean:+.4f}" + (f" ({diff.ci95[0]:+.4f} – {diff.ci95[1]:+.4f})" if diff.ci95 else "")
            ppl = f"{row.perplexity:.2f}" if row.perplexity is not None else "–"
            out.append(f"| {name} | {_num(row.context)} | {row.mean:.4f} | {ci} | {ppl} | {row.n} | {vs} |")
    out += ["", "*vs none*: this scaling's loss minus the unscaled model's, window by window on the same target "
            "tokens (positive: scaling costs loss)."]
    return "\n".join(out)


def summary(path: str, out: str) -> None:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    keep = {k: data[k] for k in ("schema", "id", "created", "status", "finished", "model", "settings", "environment",
                                 "quality") if k in data}
    keep["prefill"] = [{"length": p.get("length"), "status": p.get("status"),
                        "median_ms": (p.get("latency_ms") or {}).get("median"),
                        "timed_calls": len((p.get("latency_ms") or {}).get("samples") or []),
                        "contention": p.get("contention")}
                       for p in data.get("points", []) if p.get("mode") == "prefill"]
    keep["summary_of"] = Path(path).name
    Path(out).write_text(json.dumps(keep, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("tasks", "rope", "summary"))
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.what == "summary":
        if len(args.files) != 2:
            parser.error("summary RUN.json OUT.json")
        summary(*args.files)
    else:
        print(tasks_table(args.files) if args.what == "tasks" else rope_table(args.files))


if __name__ == "__main__":
    main()
