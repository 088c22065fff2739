"""The JSON blocks inside a run, typed: the analytic predictions in its header, each
point's telemetry summary, and its attention entries.

They stay plain mappings, because the ``ctxscope.run/1`` file is the contract and
other tools read these blocks as JSON objects; the types let the checker verify every
key a producer writes and a consumer reads, and ``core.serialize`` checks a loaded
file's blocks against these same declarations (unknown keys, from a newer ctxscope,
are kept and ignored). Keys added after the schema's first files are optional
(``total=False``): older runs lack them.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from typing import Any, TypedDict

from ctxscope.core.errors import RunFileError


class TelemetrySummary(TypedDict, total=False):
    """What the hardware did while one point was timed (``core.telemetry.summarize``).
    Units are in the names; a figure the machine cannot report is ``None``."""

    samples: int
    window_s: float
    cpu_percent_mean: float | None
    rss_max_bytes: int | None
    cpu_other_cores: float | None  # other processes' CPU use over the window, in cores
    gpu_util_mean_percent: float | None
    gpu_util_max_percent: float | None
    gpu_memory_used_max_bytes: int | None
    gpu_process_memory_max_bytes: int | None
    gpu_other_processes: int | None
    gpu_slowdown_mask: int | None  # NVML clock-event reasons seen, OR-ed
    power_mean_w: float | None
    power_max_w: float | None
    energy_j: float | None
    temperature_max_c: float | None
    sm_clock_mean_mhz: float | None
    sm_clock_min_mhz: float | None


class _AnalyticRowKeys(TypedDict):
    length: int


class AnalyticRow(_AnalyticRowKeys, total=False):
    """The analytic model at one length; decode figures are ``None`` for encoders."""

    kv_cache_bytes: int
    prefill_flops: float
    decode_flops: float | None
    decode_bytes: int | None
    prefill_kv_storage_bytes: int  # storage a prefill leaves in the cache
    decode_kv_storage_bytes: int | None  # storage held after one decode step at this depth
    decode_traffic_bytes: int | None  # bytes a decode step moves with the run's cache class
    state_bytes: int | None  # recurrent + convolution state (fixed in L); None: the model has none


class DevicePeak(TypedDict):
    """The device's peak compute and bandwidth the roofline used, and where they came from."""

    name: str
    flops: dict[str, float]  # per dtype, FLOP/s
    bytes_per_s: float
    source: str


class ExpertsBlock(TypedDict):
    """A mixture of experts' routing: E experts, k per token, their parameters."""

    num_experts: int
    top_k: int
    expert_params: int


class AnalyticBlock(TypedDict, total=False):
    """The run header's ``analytic`` block (``core.analytic.analytic_block``); a config
    the model cannot describe has only ``error``."""

    params: int
    weights_bytes: int
    rows: list[AnalyticRow]
    notes: list[str]
    peak: DevicePeak | None
    error: str
    layer_kinds: dict[str, int]  # decoder layers per kind (core.layer_kinds.KINDS)
    active_params: int  # a mixture of experts: parameters one token uses
    experts: ExpertsBlock
    breakdown: BreakdownCrossover  # only in runs measured with --breakdown


class BreakdownBlock(TypedDict, total=False):
    """Where one point's time went (``core.breakdown``): a separate profiled pass, never
    the timed one. ``components_ms`` per call, keyed by ``core.breakdown.COMPONENTS``
    (CPU op time on a CPU, kernel time on a GPU: ``clock``); they add up to
    ``attributed_ms``, which is ``total_ms`` (the profiled call's wall time) less what
    the profiler's own bookkeeping took outside the model's ops. ``overhead`` is
    ``total_ms`` ÷ ``timed_median_ms``. ``error``: why the pass failed (nothing else)."""

    clock: str
    calls: int
    components_ms: dict[str, float]
    total_ms: float
    attributed_ms: float
    timed_median_ms: float
    overhead: float | None
    ranged_modules: int
    error: str | None


class BreakdownCrossover(TypedDict, total=False):
    """The analytic crossover (header ``analytic.breakdown``): the prefill length where
    attention FLOPs equal the linear layers' FLOPs, and the decode depth where the KV
    bytes a step reads equal the linear layers' weight bytes; ``None``: never (no
    full-attention layer, or windows cap the attention term below)."""

    prefill_length: float | None
    decode_depth: float | None
    note: str | None


class _AttentionEntryKeys(TypedDict):
    length: int


class AttentionEntry(_AttentionEntryKeys, total=False):
    """One captured layer at one length (``status`` ok), or why a length has none.

    ``array`` names the maps in the run's ``.npz``; ``stats`` holds per-head statistics
    (``None`` where a value was not finite)."""

    layer: int
    tiles: int
    status: str
    error: str | None
    map_file_or_inline: str
    array: str
    profile_rows: list[int]
    span: list[int] | None  # the needle's token span, when one was planted
    text: str
    random_weights: bool
    stats: dict[str, list[float | None]]


# --- checking a loaded block against its declaration -----------------------------------

# The exact JSON types a plain hint admits (a bool is not a number; an int is a float).
_PLAIN: dict[Any, tuple[frozenset[type], str]] = {
    int: (frozenset({int}), "an integer"), float: (frozenset({int, float}), "a number"),
    str: (frozenset({str}), "a string"), bool: (frozenset({bool}), "true or false"),
    type(None): (frozenset({type(None)}), "null"),
}
_Check = Callable[[Any, str], None]


def check_block(kind: Any, value: Any, where: str) -> None:
    """Raise :class:`RunFileError` naming the first part of ``value`` (parsed JSON) that
    does not match the declaration ``kind`` (one of this module's TypedDicts)."""
    _validator(kind)(value, where)


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _wrong(where: str, expected: str, value: Any) -> RunFileError:
    return RunFileError(f"{where}: expected {expected}, not {_json_kind(value)}")


@functools.cache
def _validator(hint: Any) -> _Check:
    """A checker per declaration, built once: a large run checks every point's telemetry."""
    if hint in _PLAIN:
        allowed, name = _PLAIN[hint]

        def plain(value: Any, where: str) -> None:
            if type(value) not in allowed:
                raise _wrong(where, name, value)
        return plain
    if typing.is_typeddict(hint):
        return _typed_dict(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _validator(next(a for a in args if a is not type(None)))

        def optional(value: Any, where: str) -> None:  # "X | None": X's own message says what is wrong
            if value is not None:
                inner(value, where)
        return optional
    if origin is list:
        item = _validator(args[0])

        def items(value: Any, where: str) -> None:
            if type(value) is not list:
                raise _wrong(where, "a list", value)
            for i, v in enumerate(value):
                item(v, f"{where}[{i}]")
        return items
    if origin is dict:
        member = _validator(args[1])

        def mapping(value: Any, where: str) -> None:
            if type(value) is not dict:
                raise _wrong(where, "an object", value)
            for k, v in value.items():
                member(v, f"{where}.{k}")
        return mapping
    raise TypeError(f"no JSON check for {hint!r}")  # a declaration this module cannot check: a bug here


def _typed_dict(kind: Any) -> _Check:
    hints = typing.get_type_hints(kind)
    required = frozenset(kind.__required_keys__)
    # Plain keys are checked inline (one set lookup each); only a failure builds a path.
    plain = {k: t for k, h in hints.items() if (t := json_types(h)) is not None}
    nested = {k: _validator(h) for k, h in hints.items() if k not in plain}

    def check(value: Any, where: str) -> None:
        if type(value) is not dict:
            raise _wrong(where, "an object", value)
        missing = required - value.keys()
        if missing:
            raise RunFileError(f"{where}.{min(missing)}: missing")
        for k, v in value.items():  # unknown keys (a newer ctxscope's) pass unchecked
            allowed = plain.get(k)
            if allowed is not None:
                if type(v) not in allowed:
                    _validator(hints[k])(v, f"{where}.{k}")  # raises with the message
            elif k in nested:
                nested[k](v, f"{where}.{k}")
    return check


def json_types(hint: Any) -> frozenset[type] | None:
    """The exact JSON types a plain hint (``int``, ``float | None``, ...) admits; ``None``
    for hints that need more than a type test (the run records' fields use it too)."""
    if hint in _PLAIN:
        return _PLAIN[hint][0]
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return None
    out: frozenset[type] = frozenset()
    for arg in typing.get_args(hint):
        if arg not in _PLAIN:
            return None
        out |= _PLAIN[arg][0]
    return out
