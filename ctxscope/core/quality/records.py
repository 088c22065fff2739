"""Quality results as frozen plain data, and their JSON form in ``ctxscope.run/1``.

New optional fields of the run schema (nothing existing changes meaning): the run's
``settings.quality`` (what was asked and the text and windows actually used) and a top
level ``quality`` object with the loss points and needle trials. Loading validates
both and never executes anything. No torch here: reports read these without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ctxscope.core.errors import RunFileError

STATUSES = ("ok", "oom", "error", "skipped")
NEEDLE_KINDS = ("grid", "adjacent", "no-key", "wrong-key")
#: Retrieval tasks (RULER-style, :mod:`.tasks`): one key; several keys with distractor
#: needles of the same form; several values for one key; several questions; variable
#: tracking. A trial without a task (runs before tasks existed) is ``single``.
TASKS = ("single", "multikey", "multivalue", "multiquery", "vt")


@dataclass(frozen=True, slots=True)
class LossPoint:
    """Loss of the fixed target windows when the model reads ``context`` tokens before
    each. ``window_nll``: mean negative log-likelihood per window (nats/token), in the
    order of ``settings.quality.window_starts``; empty unless ``status == "ok"``."""

    context: int
    status: str
    error: str | None = None
    window_nll: tuple[float, ...] = ()
    seconds: float | None = None  # wall time of the point's forward passes (never timed carefully)


@dataclass(frozen=True, slots=True)
class NeedleTrial:
    """One needle prompt of ``length`` tokens (haystack, needles, question and the
    answer's tokens). ``kind``: ``grid`` (the needles at ``depth`` %), ``adjacent``
    (the needles right before the question, no haystack: can the model do the task at
    all), ``no-key`` (no fact: the chance level) or ``wrong-key`` (needles of the same
    form, a question about a key none of them has: any value returned is a false
    retrieval). ``task``: see :data:`TASKS`; ``single`` is scored by teacher forcing
    (``key``, ``key_logprob``), the others by greedy generation matched against
    ``expected`` (``recall``) and ``distractors`` (``false_hits``)."""

    kind: str
    length: int
    depth: float | None
    seed: int
    status: str
    error: str | None = None
    key: str = ""
    found: bool | None = None  # greedy decoding reproduces the key
    key_logprob: float | None = None  # log p(key | prompt), nats: graded even where it fails
    answer: str | None = None  # greedy output, up to and including the first wrong token
    position: int | None = None  # the fact's first token (grid)
    seconds: float | None = None
    task: str = "single"
    expected: tuple[str, ...] = ()  # what the answer must contain (tasks other than single)
    distractors: tuple[str, ...] = ()  # planted values the answer must not contain
    recall: float | None = None  # share of ``expected`` found in the answer
    false_hits: int | None = None  # how many distractors the answer contains
    positions: tuple[int, ...] = ()  # every needle's first token


@dataclass(frozen=True, slots=True)
class QualityPoint:
    """Event: one loss point or needle trial measured (or failed, or skipped)."""

    item: LossPoint | NeedleTrial


@dataclass(frozen=True, slots=True)
class QualityResult:
    """Everything the quality passes of a run measured, in measurement order."""

    loss: tuple[LossPoint, ...] = ()
    needle: tuple[NeedleTrial, ...] = ()

    def add(self, item: LossPoint | NeedleTrial) -> QualityResult:
        if isinstance(item, LossPoint):
            return QualityResult(loss=self.loss + (item,), needle=self.needle)
        return QualityResult(loss=self.loss, needle=self.needle + (item,))


def _finite(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


def item_to_dict(item: LossPoint | NeedleTrial) -> dict[str, Any]:
    if isinstance(item, LossPoint):
        return {"context": item.context, "status": item.status, "error": item.error,
                "window_nll": [float(v) for v in item.window_nll], "seconds": _finite(item.seconds)}
    return {"kind": item.kind, "length": item.length, "depth": item.depth, "seed": item.seed, "status": item.status,
            "error": item.error, "key": item.key, "found": item.found, "key_logprob": _finite(item.key_logprob),
            "answer": item.answer, "position": item.position, "seconds": _finite(item.seconds), "task": item.task,
            "expected": list(item.expected), "distractors": list(item.distractors), "recall": _finite(item.recall),
            "false_hits": item.false_hits, "positions": list(item.positions)}


def quality_to_dict(result: QualityResult, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run JSON's ``quality`` object: the records, and (with the run's
    ``settings.quality``) the figures derived from them under ``derived`` — written for
    scripts, recomputed from the records when a run is loaded."""
    out: dict[str, Any] = {"loss": [item_to_dict(p) for p in result.loss],
                           "needle": [item_to_dict(t) for t in result.needle]}
    if settings is not None:
        from ctxscope.core.quality.derived import derived

        out["derived"] = derived(result, settings)
    return out


def _get(data: dict[str, Any], name: str, where: str, kinds: tuple[type, ...], *, optional: bool = True) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if type(value) not in kinds:  # exact types: a bool is not a number here
        raise RunFileError(f"{where}.{name}: wrong type ({type(value).__name__})")
    return value


def _status(data: dict[str, Any], where: str) -> str:
    status = data.get("status")
    if status not in STATUSES:
        raise RunFileError(f"{where}.status: {str(status)[:40]!r} is not one of {', '.join(STATUSES)}")
    return str(status)


def _positive(data: dict[str, Any], name: str, where: str) -> int:
    value = int(_get(data, name, where, (int,), optional=False))
    if value <= 0:
        raise RunFileError(f"{where}.{name}: expected a positive integer")
    return value


def loss_from_dict(data: Any, where: str) -> LossPoint:
    if not isinstance(data, dict):
        raise RunFileError(f"{where}: expected an object")
    nll = data.get("window_nll", [])
    if not isinstance(nll, list) or any(type(v) not in (int, float) or not math.isfinite(v) for v in nll):
        raise RunFileError(f"{where}.window_nll: expected a list of numbers")
    status = _status(data, where)
    if status == "ok" and not nll:
        raise RunFileError(f"{where}.window_nll: an ok point needs one value per window")
    return LossPoint(context=_positive(data, "context", where), status=status,
                     error=_get(data, "error", where, (str,)), window_nll=tuple(float(v) for v in nll),
                     seconds=_get(data, "seconds", where, (int, float)))


def needle_from_dict(data: Any, where: str) -> NeedleTrial:
    if not isinstance(data, dict):
        raise RunFileError(f"{where}: expected an object")
    kind = str(data.get("kind"))
    if kind not in NEEDLE_KINDS:
        raise RunFileError(f"{where}.kind: {str(kind)[:40]!r} is not one of {', '.join(NEEDLE_KINDS)}")
    depth = _get(data, "depth", where, (int, float))
    if depth is not None and not 0 <= depth <= 100:
        raise RunFileError(f"{where}.depth: expected a percentage from 0 to 100")
    logprob = _get(data, "key_logprob", where, (int, float))
    task = data.get("task", "single")
    if task not in TASKS:
        raise RunFileError(f"{where}.task: {str(task)[:40]!r} is not one of {', '.join(TASKS)}")
    recall = _get(data, "recall", where, (int, float))
    if recall is not None and not 0 <= recall <= 1:
        raise RunFileError(f"{where}.recall: expected a share from 0 to 1")
    hits = _get(data, "false_hits", where, (int,))
    if hits is not None and hits < 0:
        raise RunFileError(f"{where}.false_hits: expected a count")
    return NeedleTrial(kind=kind, length=_positive(data, "length", where), depth=depth,
                       seed=_get(data, "seed", where, (int,), optional=False), status=_status(data, where),
                       error=_get(data, "error", where, (str,)), key=_get(data, "key", where, (str,)) or "",
                       found=_get(data, "found", where, (bool,)),
                       key_logprob=None if logprob is None else float(logprob),
                       answer=_get(data, "answer", where, (str,)), position=_get(data, "position", where, (int,)),
                       seconds=_get(data, "seconds", where, (int, float)), task=str(task),
                       expected=_strings(data, "expected", where), distractors=_strings(data, "distractors", where),
                       recall=None if recall is None else float(recall), false_hits=hits,
                       positions=_ints(data, "positions", where))


def _strings(data: dict[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = data.get(name, [])
    if not isinstance(value, list) or any(type(v) is not str for v in value):
        raise RunFileError(f"{where}.{name}: expected a list of strings")
    return tuple(value)


def _ints(data: dict[str, Any], name: str, where: str) -> tuple[int, ...]:
    value = data.get(name, [])
    if not isinstance(value, list) or any(type(v) is not int for v in value):
        raise RunFileError(f"{where}.{name}: expected a list of integers")
    return tuple(value)


def quality_from_dict(data: Any, where: str = "quality") -> QualityResult:
    """Validate and build the run JSON's ``quality`` object (``RunFileError`` on any
    wrong type, unknown status or kind, or non-finite loss)."""
    if not isinstance(data, dict):
        raise RunFileError(f"{where}: expected an object")
    loss, needle = data.get("loss", []), data.get("needle", [])
    if not isinstance(loss, list) or not isinstance(needle, list):
        raise RunFileError(f"{where}: loss and needle must be lists")
    return QualityResult(loss=tuple(loss_from_dict(p, f"{where}.loss[{i}]") for i, p in enumerate(loss)),
                         needle=tuple(needle_from_dict(t, f"{where}.needle[{i}]") for i, t in enumerate(needle)))


def check_settings(data: Any, where: str = "settings.quality") -> None:
    """``settings.quality`` is an object whose window starts and lengths are integers:
    reports index the text with them."""
    if not isinstance(data, dict):
        raise RunFileError(f"{where}: expected an object")
    for name in ("window_starts", "depths"):
        value = data.get(name, [])
        if not isinstance(value, list) or any(type(v) not in (int, float) for v in value):
            raise RunFileError(f"{where}.{name}: expected a list of numbers")
    for name in ("target_tokens", "windows", "seeds", "text_tokens", "fits", "claimed"):
        if data.get(name) is not None and type(data.get(name)) is not int:
            raise RunFileError(f"{where}.{name}: expected an integer")
    for name in ("threshold", "epsilon"):
        if data.get(name) is not None and type(data.get(name)) not in (int, float):
            raise RunFileError(f"{where}.{name}: expected a number")
    if data.get("note") is not None and not isinstance(data.get("note"), str):
        raise RunFileError(f"{where}.note: expected a string")
    tasks = data.get("tasks", [])
    if not isinstance(tasks, list) or any(t not in TASKS for t in tasks):
        raise RunFileError(f"{where}.tasks: expected a list among {', '.join(TASKS)}")
