"""JSON (de)serialisation of runs: validating, migrating, never executing anything."""

from __future__ import annotations

import functools
import gc
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ctxscope.core.blocks import AnalyticBlock, AttentionEntry, BreakdownBlock, TelemetrySummary, check_block, json_types
from ctxscope.core.errors import RunFileError
from ctxscope.core.limits import IntegerTooLarge, json_loads
from ctxscope.core.quality.records import check_settings as check_quality_settings
from ctxscope.core.quality.records import quality_from_dict
from ctxscope.core.results import (
    LAYER_KINDS,
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
from ctxscope.core.spec import MODES
from ctxscope.core.stats import LatencyStats

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# Statuses an attention entry may carry: a capture that ran, or why it did not.
ATTENTION_STATUSES = POINT_STATUSES
MAX_FILE_BYTES = 512 * 1024**2
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
_Record = TypeVar("_Record", bound="DataclassInstance")  # ModelInfo, Settings, Point, ...


def _clean(value: Any) -> Any:
    # JSON has no NaN/Infinity; write null rather than an invalid file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _plain(value: Any) -> Any:
    """``asdict`` + :func:`_clean` in one pass without deep copies: a 10,000-point report
    spent half its time copying points for the embedded JSON."""
    kind: type = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if value is None or kind in (int, str, bool):
        return value
    if kind in (list, tuple):
        if set(map(type, value)) <= {float}:  # samples: the bulk of a run
            return [v if math.isfinite(v) else None for v in value]
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(kind, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in _field_names(kind)}
    return _clean(value)


def point_to_dict(point: Point) -> dict[str, Any]:
    """A point as the schema's JSON object (latency includes derived stats and samples)."""
    out: dict[str, Any] = _plain(point)
    if point.latency_ms is not None:
        out["latency_ms"]["noisy"] = point.latency_ms.noisy
    return out


def header_to_dict(header: RunHeader) -> dict[str, Any]:
    out: dict[str, Any] = _clean({"schema": SCHEMA, "id": header.id, "created": header.created,
                                  "model": asdict(header.model), "settings": asdict(header.settings),
                                  "environment": asdict(header.environment), "analytic": header.analytic})
    return out


def run_to_dict(run: RunResult) -> dict[str, Any]:
    """The whole run in the ``ctxscope.run/1`` layout."""
    out = header_to_dict(run.header)
    out.update(status=run.status, finished=run.finished,
               points=[point_to_dict(p) for p in run.points],
               attention=_plain(run.attention))  # copies: the caller may edit what it gets
    if run.quality is not None:
        from ctxscope.core.quality.records import quality_to_dict

        out["quality"] = quality_to_dict(run.quality, run.header.settings.quality)
    return out


def dumps_run(run: RunResult) -> str:
    return json.dumps(run_to_dict(run), indent=1, allow_nan=False, ensure_ascii=False)


def write_run(run: RunResult, path: Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(dumps_run(run), encoding="utf-8")
    tmp.replace(path)


# JSON values come as exactly these types (a bool is not a number here).
_NUMBER_TYPES = {int, float}
_TELEMETRY_TYPES = {int, float, type(None)}


def _checker(hint: Any) -> Callable[[Any], bool]:
    """A predicate for values of the type ``hint``, built once per field: asking
    ``typing`` about the hint for every value of every point was most of a large
    file's load time."""
    plain = json_types(hint)
    if plain is not None:
        return lambda v: type(v) in plain
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = tuple(_checker(a) for a in args)
        return lambda v: any(ok(v) for ok in options)
    if origin is tuple:
        item = _checker(args[0])
        return lambda v: isinstance(v, (list, tuple)) and all(map(item, v))
    return lambda v: True  # the JSON blocks (core.blocks) are checked where they are read


@functools.cache
def _schema_of(cls: type) -> tuple[tuple[str, Callable[[Any], bool], bool], ...]:
    """(name, type check, required) per field, resolved once per class: resolving the
    hints for every point made loading a 200k-point file take minutes."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _checker(hints[f.name]), _required(f)) for f in fields(cls))


def _required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _build(cls: type[_Record], data: Any, where: str) -> _Record:
    """Build a record from a JSON object, checking every field's type; unknown keys
    (fields added by a newer ctxscope) are ignored."""
    if not isinstance(data, dict):
        raise RunFileError(f"{where}: expected an object")
    kwargs: dict[str, Any] = {}
    kind: type = cls  # the cache key: mypy does not see a type[T] as Hashable
    for name, type_ok, required in _schema_of(kind):
        if name not in data:
            if required:
                raise RunFileError(f"{where}.{name}: missing")
            continue
        value = data[name]
        if not isinstance(value, (LatencyStats, MemoryStats)) and not type_ok(value):
            raise RunFileError(f"{where}.{name}: wrong type ({type(value).__name__})")
        kwargs[name] = value
    return cls(**kwargs)


def _one_of(value: Any, allowed: tuple[str, ...], where: str) -> None:
    # Enumerated fields end up in reports and CSS classes: only known values pass.
    if value not in allowed:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise RunFileError(f"{where}: {shown} is not one of {', '.join(allowed)}")


def _tuple_fields(obj: Any, *names: str) -> dict[str, tuple[Any, ...]]:
    return {n: tuple(getattr(obj, n)) for n in names}


def point_from_dict(data: Any, where: str = "point") -> Point:
    if not isinstance(data, dict):
        raise RunFileError(f"{where}: expected an object")
    latency = data.get("latency_ms")
    memory = data.get("memory")
    lat = None
    if latency is not None:
        samples = latency.get("samples") if isinstance(latency, dict) else None
        if not isinstance(samples, list) or not set(map(type, samples)) <= _NUMBER_TYPES:
            raise RunFileError(f"{where}.latency_ms.samples: expected a list of numbers")
        try:
            lat = LatencyStats.from_samples(samples)  # derive again: the samples are the truth
        except ValueError as exc:
            raise RunFileError(f"{where}.latency_ms: {exc}") from None
    mem = _build(MemoryStats, memory, f"{where}.memory") if memory is not None else None
    body = {k: v for k, v in data.items() if k not in ("latency_ms", "memory")}
    telemetry = body.get("telemetry")
    if telemetry is not None:
        check_block(TelemetrySummary, telemetry, f"{where}.telemetry")
        # Every figure is a number, a newer ctxscope's undeclared ones too.
        if not set(map(type, telemetry.values())) <= _TELEMETRY_TYPES:
            raise RunFileError(f"{where}.telemetry: expected an object of numbers")
    breakdown = body.get("breakdown")
    if breakdown is not None:
        check_block(BreakdownBlock, breakdown, f"{where}.breakdown")
    point = _build(Point, {**body, "latency_ms": lat, "memory": mem}, where)
    _one_of(point.status, POINT_STATUSES, f"{where}.status")
    _one_of(point.mode, MODES, f"{where}.mode")
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
    model = replace(model, layer_kinds=tuple(model.layer_kinds))
    for i, kind in enumerate(model.layer_kinds):  # shown in reports: only known kinds pass
        _one_of(kind, LAYER_KINDS, f"model.layer_kinds[{i}]")
    settings = _build(Settings, data.get("settings"), "settings")
    settings = Settings(**{**asdict(settings), **_tuple_fields(settings, "modes", "lengths")})
    if settings.quality is not None:
        check_quality_settings(settings.quality)
    for i, mode in enumerate(settings.modes):
        _one_of(mode, MODES, f"settings.modes[{i}]")
    env = _build(Environment, data.get("environment"), "environment")
    for key in ("id", "created"):
        if not isinstance(data.get(key), str):
            raise RunFileError(f"{key}: expected a string")
    if not _RUN_ID.fullmatch(data["id"]):
        # The id names files (the attention maps beside the run, in the history): it must
        # not be able to point anywhere else ("../", "/", empty).
        raise RunFileError("id: expected letters, digits, '-', '_' or '.' (at most 64, not starting with '.')")
    analytic = data.get("analytic")
    if analytic is not None:
        check_block(AnalyticBlock, analytic, "analytic")
    header = RunHeader(id=data["id"], created=data["created"], model=model, settings=settings, environment=env,
                       analytic=analytic)
    points_data = data.get("points", [])
    if not isinstance(points_data, list):
        raise RunFileError("points: expected a list")
    points = tuple(point_from_dict(p, f"points[{i}]") for i, p in enumerate(points_data))
    status = data.get("status")
    _one_of(status, RUN_STATUSES, "status")
    attention = data.get("attention") or []
    if not isinstance(attention, list):
        raise RunFileError("attention: expected a list")
    for i, entry in enumerate(attention):
        check_block(AttentionEntry, entry, f"attention[{i}]")
        if entry.get("status") is not None:  # very early captures wrote none
            _one_of(entry["status"], ATTENTION_STATUSES, f"attention[{i}].status")
    quality = data.get("quality")
    return RunResult(header=header, status=status, points=points, finished=data.get("finished"),
                     attention=tuple(attention), quality=quality_from_dict(quality) if quality is not None else None)


def load_run(path: str | Path) -> RunResult:
    """Read a run file. Plain JSON only: nothing in it is ever executed or unpickled."""
    from ctxscope.core.files import FileRefused, read_text_limited

    path = Path(path)
    try:
        # Bounded whatever the size claims: /dev/zero, a FIFO or a /proc file say 0 bytes.
        text = read_text_limited(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise RunFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RunFileError(f"{path}: is a directory, not a run file") from None
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: not UTF-8 text, not a run file") from None
    except FileRefused as exc:
        raise RunFileError(f"{path}: {exc.strerror}, not a run file") from None
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read ({exc.strerror})") from None
    return loads_run(text, str(path))


def loads_run(text: str, name: str = "<run>") -> RunResult:
    """Parse and validate a run from JSON text; ``name`` prefixes error messages."""
    # A large file creates millions of objects that all stay alive: the cyclic garbage
    # collector would scan them again and again for nothing (a third of the load time).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            data = json_loads(text)  # an integer SQLite cannot hold is refused here, wherever it is
        except IntegerTooLarge as exc:
            raise RunFileError(f"{name}: {exc}") from None
        except (json.JSONDecodeError, RecursionError) as exc:
            raise RunFileError(f"{name}: not valid JSON ({exc})") from None
        try:
            return run_from_dict(data)
        except RunFileError as exc:
            raise RunFileError(f"{name}: {exc}") from None
    finally:
        if was_enabled:
            gc.enable()
