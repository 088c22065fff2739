"""Figures derived from the quality records, for the run JSON's ``quality.derived``
(scripts read these; ctxscope itself recomputes them from the records on load)."""

from __future__ import annotations

from typing import Any

from ctxscope.core.quality.effective import Cell, by_length, effective_of, loss_rows, needle_grid, pool, savings, tasks_of
from ctxscope.core.quality.records import QualityResult
from ctxscope.core.quality.verdicts import steps


def _r(v: float | None, digits: int = 5) -> float | None:
    return None if v is None else round(v, digits)


def _cell(c: Cell) -> dict[str, Any]:
    ci = c.interval
    return {"rate": _r(c.rate, 4), "found": c.found, "trials": c.n, "wilson95_low": _r(ci[0], 4) if ci else None,
            "wilson95_high": _r(ci[1], 4) if ci else None, "mean_key_logprob": _r(c.logprob, 4),
            "false_retrievals": c.false, "mean_recall": _r(c.recall, 4), "not_run": c.failed}


def derived(result: QualityResult, settings: dict[str, Any] | None) -> dict[str, Any]:
    """Loss per context and its steps with their verdicts, retrieval per task, length
    and cell (Wilson 95 % intervals), the controls, and the effective context."""
    eff = effective_of(result, settings)
    epsilon = eff.epsilon
    trials = result.needle
    tasks = tasks_of(trials)
    all_lengths, all_depths, all_cells = needle_grid(trials)
    per_task = {}
    for task in tasks:
        lengths, depths, cells = needle_grid(trials, task)
        per_task[task] = {
            "by_length": [{"length": n, **_cell(c)} for n, c in by_length(trials, task=task).items()],
            "grid": [{"length": n, "depth": d, **_cell(cells[(n, d)])} for n in lengths for d in depths],
            "adjacent": _cell(pool([t for t in trials if t.kind == "adjacent" and t.task == task])),
        }
    return {
        "loss": [{"context": r.context, "status": r.status, "mean_nll": _r(r.mean), "ci95_low": _r(r.low),
                  "ci95_high": _r(r.high), "perplexity": _r(r.perplexity, 3), "windows": r.n}
                 for r in loss_rows(result.loss)],
        "saved_vs_shortest": [{"context": s.context, "mean": _r(s.mean), "ci95_low": _r(s.low),
                               "ci95_high": _r(s.high)} for s in savings(result.loss)],
        "loss_steps": [{"from": s.start, "to": s.end, "saved_per_doubling": _r(s.saving.mean),
                        "ci95": [_r(v) for v in s.saving.ci95] if s.saving.ci95 else None,
                        "ci90": [_r(v) for v in s.saving.ci90] if s.saving.ci90 else None, "verdict": s.verdict}
                       for s in steps(result.loss, epsilon)],
        # every task pooled (a run of the single task alone: that task, as before tasks existed)
        "retrieval": [{"length": n, **_cell(c)} for n, c in by_length(trials).items()],
        "grid": [{"length": n, "depth": d, **_cell(all_cells[(n, d)])} for n in all_lengths for d in all_depths],
        "tasks": per_task,
        "controls": {"adjacent": _cell(pool([t for t in trials if t.kind == "adjacent"])),
                     "no_key": [{"length": n, **_cell(c)} for n, c in by_length(trials, "no-key").items()],
                     "wrong_key": [{"length": n, **_cell(c)} for n, c in by_length(trials, "wrong-key").items()]},
        "effective": {"claimed": eff.claimed, "fits": eff.fits, "retrieval": eff.retrieval, "loss": eff.loss,
                      "threshold": eff.threshold, "epsilon": eff.epsilon, "line": eff.line(),
                      "loss_verdict": eff.loss_verdict.kind if eff.loss_verdict else None,
                      "tasks": {task: {"effective": v.effective, "text": v.text} for task, v in eff.tasks}},
    }
