"""The quality passes inside a sweep: prepared before the first point (bad input fails
before anything is measured), then run at each length after that length's timed points.

Never timed and never touching the timed passes' kernel or cache: each forward is a
fresh call of the model as loaded — cache-less under the default cache, or, under another
KV-cache strategy (``QualityPlan.cache``), the context prefilled into a fresh cache of
that strategy and the targets scored through it. The stop event is checked between
forward passes; an out-of-memory or other failure is a recorded point.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ctxscope.core.errors import BadInputError
from ctxscope.core.measure.memory import classify_failure, release
from ctxscope.core.quality import loss as loss_mod
from ctxscope.core.quality import needle as needle_mod
from ctxscope.core.quality import tasks as tasks_mod
from ctxscope.core.quality import trials as trials_mod
from ctxscope.core.quality.config import QualityConfig, check_config
from ctxscope.core.quality.records import LossPoint, QualityPoint, QualityResult
from ctxscope.core.quality.texts import Document, bos_prefix, read_document, sentence_ends, tokenize

if TYPE_CHECKING:
    from ctxscope.core.model.loading import LoadedModel

_TOKENS_CACHE: dict[tuple[str, str, int, str], np.ndarray] = {}


@dataclass
class QualityPlan:
    """What the passes need, prepared once per sweep. Holds the tokenizer: it stays in
    the sweep's thread. ``note`` (and nothing else) when quality does not apply."""

    cfg: QualityConfig
    settings: dict[str, Any]
    note: str | None = None
    tokenizer: Any = None
    ids: np.ndarray | None = None
    ends: np.ndarray | None = None
    prefix: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # the BOS the model expects
    starts: tuple[int, ...] = ()
    failed: set[str] = field(default_factory=set)  # kinds that ran out of memory
    controls_done: set[str] = field(default_factory=set)  # tasks whose no-haystack control ran
    result: QualityResult = field(default_factory=QualityResult)  # everything yielded so far
    #: A fresh cache of the sweep's KV strategy for a given number of tokens; None: the
    #: default cache, whose read is one cache-less forward (the same numbers, less work).
    cache: Callable[[int], Any] | None = None


def not_applicable(info: Any) -> str | None:
    """Why quality cannot be measured on this model (one line), or ``None``."""
    if info.random_weights:
        return (f"quality refused: {info.source} has random weights (a preset, a config file or --random-weights), "
                "so its loss and retrieval would measure noise")
    if not info.is_decoder:
        return (f"quality does not apply to {info.source}: an encoder predicts no next token "
                "(loss vs context and needle retrieval are for decoders)")
    return None


def _tokens(document: Document, tokenizer: Any) -> np.ndarray:
    # The app sweeps the same model again and again: tokenising a novel takes ~1 s.
    key = (type(tokenizer).__name__, str(getattr(tokenizer, "name_or_path", "")), len(tokenizer), document.sha256)
    if key not in _TOKENS_CACHE:
        _TOKENS_CACHE.clear()
        _TOKENS_CACHE[key] = tokenize(document, tokenizer)
    return _TOKENS_CACHE[key]


def prepare(loaded: LoadedModel, cfg: QualityConfig, lengths: tuple[int, ...]) -> QualityPlan:
    """Check the quality request against the model and the text before the sweep starts.

    Raises
    ------
    BadInputError
        Random weights, an encoder or no tokenizer (unless ``cfg.only_if_applicable``:
        then the plan carries a note instead); a text that is unreadable, or too short
        for the longest length (the message says the longest it supports); lengths too
        short to hold a needle prompt.
    """
    from ctxscope.core.attention.text import load_tokenizer

    check_config(cfg)
    base = {"kinds": list(cfg.kinds), "claimed": loaded.info.max_positions, "fits": cfg.fits,
            "threshold": cfg.threshold, "epsilon": cfg.epsilon}
    reason = not_applicable(loaded.info)
    tokenizer = load_tokenizer(loaded) if reason is None else None
    if reason is None and tokenizer is None:
        reason = f"quality needs {loaded.info.source}'s tokenizer to read text, and it has none"
    if reason is not None:
        if cfg.only_if_applicable:
            return QualityPlan(cfg=cfg, settings={**base, "note": reason}, note=reason)
        raise BadInputError(reason)
    document = read_document(cfg.text, cfg.text_encoding)
    ids = _tokens(document, tokenizer)
    longest = max(lengths)
    plan = QualityPlan(cfg=cfg, settings={}, tokenizer=tokenizer, ids=ids, prefix=bos_prefix(tokenizer))
    if "loss" in cfg.kinds:
        plan.starts = loss_mod.place_windows(ids.shape[0], cfg.target_tokens, cfg.windows, longest)
    if "needle" in cfg.kinds:
        least = trials_mod.least_length(tokenizer, cfg.tasks, len(plan.prefix))
        if min(lengths) < least:
            raise BadInputError(f"needle retrieval ({', '.join(cfg.tasks)}) needs lengths of at least {least} tokens "
                                f"(needles, question, answer and some text); {min(lengths)} is too short")
        if longest > ids.shape[0]:
            raise BadInputError(f"the text has {ids.shape[0]:,} tokens: needle haystacks up to that length, not "
                                f"{longest:,} (texts are never tiled)")
        plan.ends = sentence_ends(ids, tokenizer)
    plan.settings = {**base, "text": document.name, "text_source": document.source, "text_sha256": document.sha256,
                     "text_tokens": int(ids.shape[0]), "target_tokens": cfg.target_tokens, "windows": cfg.windows,
                     "window_starts": list(plan.starts), "depths": [float(d) for d in cfg.depths],
                     "seeds": cfg.seeds, "fact": needle_mod.FACT, "question": needle_mod.QUESTION,
                     "tasks": list(cfg.tasks), "needles_per_task": tasks_mod.NEEDLES, "text_encoding": cfg.text_encoding,
                     "text_shipped": document.shipped,
                     "bos": int(plan.prefix[0]) if plan.prefix.size else None}
    return plan


def _cap(loaded: LoadedModel, allow_beyond_max: bool) -> int | None:
    info = loaded.info
    return info.position_limit or (None if allow_beyond_max else info.max_positions)


def _attempt(loaded: LoadedModel, work: Callable[[], Any]) -> tuple[Any, str, str | None]:
    """(value, "ok", None), or (None, status, message) for a failure: a model call that
    fails is data, and memory is released outside the except block (its traceback
    holds the failed pass's tensors)."""
    failure: tuple[str, str] | None = None
    try:
        return work(), "ok", None
    except Exception as exc:
        failure = classify_failure(exc)
    release(loaded.device, collect=True)
    return None, failure[0], failure[1]


def run_quality(loaded: LoadedModel, plan: QualityPlan, length: int, *, seed: int, allow_beyond_max: bool,
                continue_after_oom: bool, stop: threading.Event | None) -> Generator[QualityPoint, None, bool]:
    """Measure the quality passes at ``length``: yield one :class:`QualityPoint` per loss
    point and per needle trial; return ``False`` when stopped (a partial loss point is
    dropped), else ``True``."""
    if plan.note is not None:
        return True
    cap = _cap(loaded, allow_beyond_max)
    def stopped() -> bool:
        return stop is not None and stop.is_set()

    if "loss" in plan.cfg.kinds:
        point = yield from _loss_point(loaded, plan, length, cap, continue_after_oom, stopped)
        if point is None:
            return False
        plan.result = plan.result.add(point)
    if "needle" in plan.cfg.kinds:
        assert plan.ids is not None and plan.ends is not None
        for p in trials_mod.planned(plan.cfg, plan.controls_done):
            if stopped():
                return False
            skip = ("the needle pass ran out of memory at a shorter length"
                    if "needle" in plan.failed and not continue_after_oom else None)
            trial = trials_mod.run_trial(loaded, p, ids=plan.ids, ends=plan.ends, tokenizer=plan.tokenizer,
                                         prefix=plan.prefix, cfg=plan.cfg, length=length, sweep_seed=seed, cap=cap,
                                         skip_reason=skip, attempt=functools.partial(_attempt, loaded),
                                         cache=plan.cache)
            if trial.status == "oom":
                plan.failed.add("needle")
            plan.result = plan.result.add(trial)
            yield QualityPoint(trial)
            if p.kind == "adjacent":
                plan.controls_done.add(p.task)
    return True


def _loss_point(loaded: LoadedModel, plan: QualityPlan, context: int, cap: int | None, continue_after_oom: bool,
                stopped: Callable[[], bool]) -> Generator[QualityPoint, None, LossPoint | None]:
    k = plan.cfg.target_tokens
    need = loss_mod.positions_needed(context, k, len(plan.prefix))
    point: LossPoint | None = None
    if cap is not None and need > cap:
        point = LossPoint(context, "skipped", f"context {context} + {k} targets needs {need} positions, beyond the "
                                              f"model's {cap}" + ("" if loaded.info.position_limit else
                                                                  " (--allow-beyond-max to try)"))
    elif "loss" in plan.failed and not continue_after_oom:
        point = LossPoint(context, "skipped", "the loss pass ran out of memory at a shorter context")
    else:
        t0 = time.perf_counter()
        values: list[float] = []
        for start in plan.starts:
            if stopped():
                return None
            assert plan.ids is not None
            value, status, error = _attempt(loaded, functools.partial(
                loss_mod.window_nll, loaded.model, loaded.device, plan.ids, start, context, k, prefix=plan.prefix,
                cache=plan.cache))
            if status != "ok":
                if status == "oom":
                    plan.failed.add("loss")
                point = LossPoint(context, status, error)
                break
            values.append(value)
        else:
            point = LossPoint(context, "ok", window_nll=tuple(values), seconds=time.perf_counter() - t0)
    yield QualityPoint(point)
    return point
