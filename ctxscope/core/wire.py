"""The core's events as JSON lines, for a sweep that runs in another process or on
another machine (``ctxscope worker`` over SSH, a Ray task).

Every line is one JSON object with a ``type``: ``hello`` (the worker's versions and
devices), ``job``, ``event``, ``array`` (a chunk of an attention map), ``confirm`` /
``answer`` (the memory guard's question), ``stop``, ``end`` or ``error``. Events are
written with the run schema's own rules (:mod:`ctxscope.core.serialize`) and read back
through its validation: nothing received is ever executed or unpickled, and anything
that does not validate raises :class:`WireError`.

Attention maps travel as ``array`` lines before the event that uses them
(:mod:`ctxscope.core.wire_arrays`); the declared shape bounds what may be inflated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ctxscope.core.blocks import AttentionEntry, check_block
from ctxscope.core.errors import RunFileError
from ctxscope.core.errors import WireError as WireError  # re-exported: the protocol's error
from ctxscope.core.events import (AttentionResult, CellFailed, CellFinished, LoadedSummary, MaxContext, MemoryCheck,
                                  ModelLoading, ModelReady, PointFailed, PointResult, Progress, SweepStarted,
                                  TelemetrySample, Trial)
from ctxscope.core.limits import IntegerTooLarge, json_loads
from ctxscope.core.quality.records import LossPoint, QualityPoint, item_to_dict, loss_from_dict, needle_from_dict
from ctxscope.core.results import ModelInfo, RunHeader, RunResult
from ctxscope.core.serialize import (ATTENTION_STATUSES, _build, header_to_dict, point_from_dict, point_to_dict,
                                     run_from_dict, run_to_dict)
from ctxscope.core.spec import ModelSpec
from ctxscope.core.wire_arrays import ArrayAssembler, array_messages

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

PROTOCOL = 1
#: No line may be longer (a line without its end within this many bytes is garbage).
MAX_LINE_BYTES = 64 * 1024**2
_R = TypeVar("_R", bound="DataclassInstance")


def dumps(message: dict[str, Any]) -> str:
    """One message as one line (no NaN: the run schema writes null instead)."""
    return json.dumps(message, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def loads(line: bytes | str) -> dict[str, Any]:
    """Parse one line into a message object with a string ``type``."""
    if len(line) > MAX_LINE_BYTES:
        raise WireError(f"a line of {len(line):,} bytes (the limit is {MAX_LINE_BYTES:,})")
    try:
        data = json_loads(line)
    except IntegerTooLarge as exc:  # before SQLite sees it (an OverflowError there lost the run's next point)
        raise WireError(str(exc)) from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise WireError(f"not JSON: {_excerpt(line)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise WireError(f"not a ctxscope message: {_excerpt(line)}")
    return data


def _excerpt(line: bytes | str) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    return repr(text[:60] + ("…" if len(text) > 60 else ""))


# -- records the run schema does not cover ----------------------------------------------
def _record(cls: type[_R], data: Any, where: str) -> _R:
    """Build a flat frozen record, checking every field's type; lists become tuples."""
    try:
        obj = _build(cls, data, where)
    except RunFileError as exc:
        raise WireError(str(exc)) from None
    lists = {f.name: tuple(tuple(v) if isinstance(v, list) else v for v in getattr(obj, f.name))
             for f in fields(obj) if isinstance(getattr(obj, f.name), list)}
    return replace(obj, **lists) if lists else obj


def spec_from_dict(data: Any, where: str = "spec") -> ModelSpec:
    return _record(ModelSpec, data, where)


def header_from_dict(data: Any, where: str = "header") -> RunHeader:
    """A run header through the run file's own validation."""
    if not isinstance(data, dict):
        raise WireError(f"{where}: expected an object")
    return _run({**data, "status": "running", "points": []}, where).header


def _run(data: Any, where: str) -> RunResult:
    try:
        return run_from_dict(data)
    except RunFileError as exc:
        raise WireError(f"{where}: {exc}") from None


def summary_to_dict(s: LoadedSummary) -> dict[str, Any]:
    return {"spec": asdict(s.spec), "info": asdict(s.info), "device": s.device, "dtype": s.dtype,
            "attn_implementation": s.attn_implementation, "weights_bytes": s.weights_bytes,
            "device_total_bytes": s.device_total_bytes, "gpu_uuids": list(s.gpu_uuids)}


def summary_from_dict(data: Any, where: str = "summary") -> LoadedSummary:
    if not isinstance(data, dict):
        raise WireError(f"{where}: expected an object")
    body = {k: v for k, v in data.items() if k not in ("spec", "info")}
    flat = _record(LoadedSummary, {**body, "spec": None, "info": None}, where)
    return replace(flat, spec=spec_from_dict(data.get("spec"), f"{where}.spec"),
                   info=_record(ModelInfo, data.get("info"), f"{where}.info"))


def maxctx_to_dict(m: MaxContext) -> dict[str, Any]:
    return asdict(m)


def maxctx_from_dict(data: Any, where: str = "maxctx") -> MaxContext:
    if not isinstance(data, dict) or not isinstance(data.get("trials"), list):
        raise WireError(f"{where}: expected an object with a list of trials")
    trials = tuple(_record(Trial, t, f"{where}.trials[{i}]") for i, t in enumerate(data["trials"]))
    return replace(_record(MaxContext, {**data, "trials": []}, where), trials=trials)


# -- events ---------------------------------------------------------------------------
def event_to_dict(event: Any) -> dict[str, Any]:
    """An event as an ``event`` message (attention maps go separately: :func:`array_messages`)."""
    kind = type(event).__name__
    if isinstance(event, SweepStarted):
        body: dict[str, Any] = {"header": header_to_dict(event.header)}
    elif isinstance(event, (PointResult, PointFailed)):
        body = {"point": point_to_dict(event.point)}
    elif isinstance(event, AttentionResult):
        body = {"length": event.length, "status": event.status, "error": event.error,
                "tokens": list(event.tokens) if event.tokens is not None else None,
                "entries": list(event.entries), "maps": event.capture is not None}
        if event.capture is not None:
            body.update(span=list(event.capture.span) if event.capture.span else None,
                        random_weights=event.capture.random_weights,
                        without_attention=list(event.capture.without_attention))
    elif isinstance(event, QualityPoint):
        body = {"kind": "loss" if isinstance(event.item, LossPoint) else "needle", "item": item_to_dict(event.item)}
    elif isinstance(event, (Progress, TelemetrySample, Trial)):
        body = asdict(event)
    elif isinstance(event, (ModelLoading, CellFailed)):
        body = {"spec": asdict(event.spec), **({"message": event.message} if isinstance(event, CellFailed) else {})}
    elif isinstance(event, ModelReady):
        body = {"summary": summary_to_dict(event.summary)}
    elif isinstance(event, CellFinished):
        # RunResult.error (why a run stopped) is not part of the run file: sent beside it.
        body = {"spec": asdict(event.spec), "result": run_to_dict(event.result), "error": event.result.error}
    else:
        raise TypeError(f"not a ctxscope event: {kind}")
    return {"type": "event", "event": kind, **_finite(body)}


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def event_from_dict(data: dict[str, Any], arrays: ArrayAssembler | None = None) -> Any:
    """Rebuild an event from an ``event`` message; ``arrays`` holds the maps that came
    before an attention result."""
    kind = data.get("event")
    where = f"event {kind!r}"
    if kind == "SweepStarted":
        return SweepStarted(header_from_dict(data.get("header"), where))
    if kind in ("PointResult", "PointFailed"):
        try:
            point = point_from_dict(data.get("point"), where)
        except RunFileError as exc:
            raise WireError(str(exc)) from None
        if (point.status == "ok") != (kind == "PointResult"):
            raise WireError(f"{where}: a point with status {point.status!r}")
        return PointResult(point) if kind == "PointResult" else PointFailed(point)
    if kind == "AttentionResult":
        return _attention_from_dict(data, arrays, where)
    if kind == "QualityPoint":
        kind_of_item = data.get("kind")
        if kind_of_item not in ("loss", "needle"):
            raise WireError(f"{where}: kind must be loss or needle")
        try:
            item = data.get("item")
            return QualityPoint(loss_from_dict(item, f"{where}.item") if kind_of_item == "loss"
                                else needle_from_dict(item, f"{where}.item"))
        except RunFileError as exc:
            raise WireError(str(exc)) from None
    simple = {"Progress": Progress, "TelemetrySample": TelemetrySample, "Trial": Trial}
    if kind in simple:
        return _record(simple[kind], {k: v for k, v in data.items() if k not in ("type", "event")}, where)
    if kind == "ModelLoading":
        return ModelLoading(spec_from_dict(data.get("spec"), f"{where}.spec"))
    if kind == "ModelReady":
        return ModelReady(summary_from_dict(data.get("summary"), f"{where}.summary"))
    if kind == "CellFailed":
        message = data.get("message")
        if not isinstance(message, str):
            raise WireError(f"{where}.message: expected a string")
        return CellFailed(spec_from_dict(data.get("spec"), f"{where}.spec"), message)
    if kind == "CellFinished":
        result = _run(data.get("result"), f"{where}.result")
        error = data.get("error")
        if error is not None and not isinstance(error, str):
            raise WireError(f"{where}.error: expected a string")
        return CellFinished(spec_from_dict(data.get("spec"), f"{where}.spec"), replace(result, error=error))
    raise WireError(f"unknown event {str(kind)[:40]!r}")


def _attention_from_dict(data: dict[str, Any], arrays: ArrayAssembler | None, where: str) -> AttentionResult:
    length, status, error, tokens = data.get("length"), data.get("status"), data.get("error"), data.get("tokens")
    entries = data.get("entries")
    if type(length) is not int or length <= 0 or status not in ATTENTION_STATUSES:
        raise WireError(f"{where}: expected a positive length and a status among {', '.join(ATTENTION_STATUSES)}")
    if error is not None and not isinstance(error, str):
        raise WireError(f"{where}.error: expected a string")
    if tokens is not None and not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
        raise WireError(f"{where}.tokens: expected a list of strings")
    if not isinstance(entries, list):  # each entry is checked as an object below
        raise WireError(f"{where}.entries: expected a list of objects")
    for i, entry in enumerate(entries):
        try:
            check_block(AttentionEntry, entry, f"{where}.entries[{i}]")
        except RunFileError as exc:
            raise WireError(str(exc)) from None
        if entry.get("status") not in ATTENTION_STATUSES:
            raise WireError(f"{where}.entries[{i}].status: not one of {', '.join(ATTENTION_STATUSES)}")
    capture = None
    if data.get("maps") is True:
        if arrays is None:
            raise WireError(f"{where}: maps announced but none received")
        span = data.get("span")
        if span is not None and not (isinstance(span, list) and len(span) == 2 and all(type(v) is int for v in span)):
            raise WireError(f"{where}.span: expected two token positions")
        capture = arrays.capture(length, entries, tuple(span) if span else None, data.get("random_weights") is True)
        without = data.get("without_attention", [])
        if not (isinstance(without, list) and all(type(v) is int and 0 <= v < 1 << 20 for v in without)):
            raise WireError(f"{where}.without_attention: expected layer numbers")
        capture = replace(capture, without_attention=tuple(without))
    return AttentionResult(length=length, status=status, capture=capture,
                           tokens=tuple(tokens) if tokens is not None else None, entries=tuple(entries), error=error)


def event_lines(event: Any) -> Iterator[str]:
    """Everything a worker writes for one event: its maps' chunks, then the event."""
    if isinstance(event, AttentionResult):
        for message in array_messages(event):
            yield dumps(message)
    yield dumps(event_to_dict(event))


def memory_check_from_dict(data: Any) -> MemoryCheck:
    return _record(MemoryCheck, data, "confirm.check")
