"""Which needle trials a length gets, and one trial run: the single task by teacher
forcing (:mod:`.needle`), the RULER-style tasks and the wrong-key control by greedy
generation (:mod:`.tasks`, :mod:`.generate`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ctxscope.core.quality import generate as generate_mod
from ctxscope.core.quality import needle as needle_mod
from ctxscope.core.quality import tasks as tasks_mod
from ctxscope.core.quality.config import QualityConfig
from ctxscope.core.quality.records import NeedleTrial

if TYPE_CHECKING:
    from ctxscope.core.model.loading import LoadedModel

#: Tasks whose needles share one form: the wrong-key control asks about a key none has.
MULTI = ("multikey", "multivalue", "multiquery")


@dataclass(frozen=True, slots=True)
class Planned:
    task: str
    kind: str
    depth: float | None
    seed: int


def planned(cfg: QualityConfig, done: set[str]) -> list[Planned]:
    """The trials of one length: per task its no-haystack control (once per run: it does
    not depend on the length), the grid, then the chance controls — no key for the
    single task, a wrong key when a multi-needle task runs."""
    out: list[Planned] = []
    for task in cfg.tasks:
        if task not in done:
            out += [Planned(task, "adjacent", None, s) for s in range(cfg.seeds)]
        out += [Planned(task, "grid", float(d), s) for d in cfg.depths for s in range(cfg.seeds)]
        if task == "single":
            out += [Planned(task, "no-key", None, s) for s in range(cfg.seeds)]
    if any(t in MULTI for t in cfg.tasks):
        out += [Planned("multikey", "wrong-key", None, s) for s in range(cfg.seeds)]
    return out


def least_length(tokenizer: Any, tasks: tuple[str, ...], prefix: int) -> int:
    """The shortest length that holds every task's prompt and some text."""
    need = [needle_mod.overhead(tokenizer) + prefix if t == "single" else tasks_mod.overhead(tokenizer, t, prefix)
            for t in tasks]
    return max(need) + needle_mod.SNAP_TOKENS


Attempt = Callable[[Callable[[], Any]], tuple[Any, str, str | None]]


def run_trial(loaded: LoadedModel, p: Planned, *, ids: np.ndarray, ends: np.ndarray, tokenizer: Any,
              prefix: np.ndarray, cfg: QualityConfig, length: int, sweep_seed: int, cap: int | None,
              skip_reason: str | None, attempt: Attempt,
              cache: Callable[[int], Any] | None = None) -> NeedleTrial:
    """One trial at ``length``: skipped beyond the model's positions (``cap``) or with
    ``skip_reason``; a failed model call is the trial's status and error."""
    if p.task == "single":
        prompt = needle_mod.build_prompt(ids, ends, tokenizer, kind=p.kind, length=length, depth=p.depth, seed=p.seed,
                                         seeds=cfg.seeds, sweep_seed=sweep_seed, prefix=prefix)
        trial = NeedleTrial(kind=p.kind, length=int(prompt.ids.shape[0]), depth=p.depth, seed=p.seed, status="ok",
                            key=prompt.key, position=prompt.position, task="single",
                            positions=() if prompt.position is None else (prompt.position,))
        work: Callable[[], Any] = functools.partial(needle_mod.score, loaded.model, loaded.device, prompt, tokenizer,
                                                     cache=cache)
    else:
        built = tasks_mod.build(p.task, p.kind, ids, ends, tokenizer, prefix, length=length, depth=p.depth,
                                seed=p.seed, seeds=cfg.seeds, sweep_seed=sweep_seed)
        trial = NeedleTrial(kind=p.kind, length=int(built.ids.shape[0]) + built.max_new, depth=p.depth, seed=p.seed,
                            status="ok", key=built.key, task=p.task, expected=built.expected,
                            distractors=built.distractors, positions=built.positions,
                            position=built.positions[0] if built.positions else None)
        work = functools.partial(generate_mod.run_trial, loaded.model, loaded.device, built, tokenizer, cache=cache)
    if cap is not None and trial.length > cap:
        return replace(trial, status="skipped", error=f"{trial.length} tokens is beyond the model's {cap} positions")
    if skip_reason is not None and p.kind != "adjacent":
        return replace(trial, status="skipped", error=skip_reason)
    t0 = time.perf_counter()
    value, status, error = attempt(work)
    if status != "ok":
        return replace(trial, status=status, error=error)
    seconds = time.perf_counter() - t0
    if p.task == "single":
        found, logprob, answer = value
        return replace(trial, found=found, key_logprob=logprob, answer=answer, seconds=seconds)
    found, recall, false, answer = value
    return replace(trial, found=found, recall=recall, false_hits=false, answer=answer, seconds=seconds)
