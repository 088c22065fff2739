"""JSON (de)serialisation of runs: validating, migrating, never executing anything."""

from __future__ import annotations

import json
import math
import re
import types
import typing
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

from ctxscope.core.errors import RunFileError
from ctxscope.core.results import (
    POINT_STATUSES,
    RUN_STATUSES,
    SCHEMA,
    Environment,
    MemoryStats,
    ModelInfo,
    Point,
    RunHeader,
    RunResult,
    Settings,
)
from ctxscope.core.stats import LatencyStats

MAX_FILE_BYTES = 512 * 1024**2
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def _clean(value: Any) -> Any:
    # JSON has no NaN/Infinity; write null rather than an invalid file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def point_to_dict(point: Point) -> dict[str, Any]:
    """A point as the schema's JSON object (latency includes derived stats and samples)."""
    out = asdict(point)
    if point.latency_ms is not None:
        out["latency_ms"]["noisy"] = point.latency_ms.noisy
    return _clean(out)


def header_to_dict(header: RunHeader) -> dict[str, Any]:
    return _clean({"schema": SCHEMA, "id": header.id, "created": header.created,
                   "model": asdict(header.model), "settings": asdict(header.settings),
                   "environment": asdict(header.environment), "analytic": header.analytic})


def run_to_dict(run: RunResult) -> dict[str, Any]:
    """The whole run in the ``ctxscope.run/1`` layout."""
    out = header_to_dict(run.header)
    out.update(status=run.status, finished=run.finished,
               points=[point_to_dict(p) for p in run.points], attention=list(run.attention))
    return out


def dumps_run(run: RunResult) -> str:
    return json.dumps(run_to_dict(run), indent=1, allow_nan=False, ensure_ascii=False)


def write_run(run: RunResult, path: Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(dumps_run(run), encoding="utf-8")
    tmp.replace(path)


def _type_ok(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    return True  # dict payloads (attention) are checked where used


def _build(cls: type, data: Any, where: str) -> Any:
    """Build a record from a JSON object, checking every field's type; unknown keys
    (fields added by a newer ctxscope) are ignored."""
    if not isinstance(data, dict):
        raise RunFileError(f"{where}: expected an object")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise RunFileError(f"{where}.{f.name}: missing")
            continue
        value = data[f.name]
        if not isinstance(value, (LatencyStats, MemoryStats)) and not _type_ok(value, hints[f.name]):
            raise RunFileError(f"{where}.{f.name}: wrong type ({type(value).__name__})")
        kwargs[f.name] = value
    return cls(**kwargs)


def _tuple_fields(obj: Any, *names: str) -> dict[str, tuple]:
    return {n: tuple(getattr(obj, n)) for n in names}


def point_from_dict(data: Any, where: str = "point") -> Point:
    if not isinstance(data, dict):
        raise RunFileError(f"{where}: expected an object")
    latency = data.get("latency_ms")
    memory = data.get("memory")
    lat = None
    if latency is not None:
        samples = latency.get("samples") if isinstance(latency, dict) else None
        if not isinstance(samples, list) or not all(isinstance(s, (int, float)) for s in samples):
            raise RunFileError(f"{where}.latency_ms.samples: expected a list of numbers")
        try:
            lat = LatencyStats.from_samples(samples)  # derive again: the samples are the truth
        except ValueError as exc:
            raise RunFileError(f"{where}.latency_ms: {exc}") from None
    mem = _build(MemoryStats, memory, f"{where}.memory") if memory is not None else None
    body = {k: v for k, v in data.items() if k not in ("latency_ms", "memory")}
    point = _build(Point, {**body, "latency_ms": lat, "memory": mem}, where)
    if point.telemetry is not None and not (
            isinstance(point.telemetry, dict)
            and all(isinstance(k, str) and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
                    for k, v in point.telemetry.items())):
        raise RunFileError(f"{where}.telemetry: expected an object of numbers")
    if point.status not in POINT_STATUSES:
        raise RunFileError(f"{where}.status: {point.status!r} is not one of {', '.join(POINT_STATUSES)}")
    if not isinstance(point.length, int) or point.length <= 0:
        raise RunFileError(f"{where}.length: expected a positive integer")
    return point


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older run object up to :data:`SCHEMA`. There is one version so far."""
    schema = data.get("schema")
    if schema == SCHEMA:
        return data
    raise RunFileError(f"unknown schema {schema!r}: this ctxscope reads {SCHEMA!r}")


def run_from_dict(data: Any) -> RunResult:
    """Validate and build a run from a parsed JSON object."""
    if not isinstance(data, dict):
        raise RunFileError("not a ctxscope run: the top level is not an object")
    data = migrate(data)
    model = _build(ModelInfo, data.get("model"), "model")
    settings = _build(Settings, data.get("settings"), "settings")
    settings = Settings(**{**asdict(settings), **_tuple_fields(settings, "modes", "lengths")})
    env = _build(Environment, data.get("environment"), "environment")
    for key in ("id", "created"):
        if not isinstance(data.get(key), str):
            raise RunFileError(f"{key}: expected a string")
    if not _RUN_ID.fullmatch(data["id"]):
        # The id names files (the attention maps beside the run, in the history): it must
        # not be able to point anywhere else ("../", "/", empty).
        raise RunFileError("id: expected letters, digits, '-', '_' or '.' (at most 64, not starting with '.')")
    analytic = data.get("analytic")
    if analytic is not None and not isinstance(analytic, dict):
        raise RunFileError("analytic: expected an object")
    header = RunHeader(id=data["id"], created=data["created"], model=model, settings=settings, environment=env,
                       analytic=analytic)
    points_data = data.get("points", [])
    if not isinstance(points_data, list):
        raise RunFileError("points: expected a list")
    points = tuple(point_from_dict(p, f"points[{i}]") for i, p in enumerate(points_data))
    status = data.get("status")
    if status not in RUN_STATUSES:
        raise RunFileError(f"status: {status!r} is not one of {', '.join(RUN_STATUSES)}")
    attention = data.get("attention") or []
    if not isinstance(attention, list):
        raise RunFileError("attention: expected a list")
    return RunResult(header=header, status=status, points=points, finished=data.get("finished"),
                     attention=tuple(attention))


def load_run(path: str | Path) -> RunResult:
    """Read a run file. Plain JSON only: nothing in it is ever executed or unpickled."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise RunFileError(f"{path}: larger than {MAX_FILE_BYTES // 1024**2} MiB, not a run file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RunFileError(f"{path}: is a directory, not a run file") from None
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: not UTF-8 text, not a run file") from None
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read ({exc.strerror})") from None
    return loads_run(text, str(path))


def loads_run(text: str, name: str = "<run>") -> RunResult:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RunFileError(f"{name}: not valid JSON ({exc})") from None
    try:
        return run_from_dict(data)
    except RunFileError as exc:
        raise RunFileError(f"{name}: {exc}") from None
