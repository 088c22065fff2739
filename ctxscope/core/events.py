"""The one event vocabulary of ctxscope's jobs: what :func:`ctxscope.core.sweep.run_sweep`,
a matrix (:mod:`ctxscope.core.matrix`) and the max-context search yield, whether the job
runs here, over SSH or on a Ray cluster (:mod:`ctxscope.core.launch`). Frozen plain
data, safe to hand to another thread; front ends ``match`` on these types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.quality.records import QualityPoint
from ctxscope.core.results import ModelInfo, Point, RunHeader, RunResult
from ctxscope.core.spec import ModelSpec
from ctxscope.core.telemetry import TelemetrySample

if TYPE_CHECKING:  # the search's module reaches torch (lazily); its records are plain data
    from ctxscope.core.maxctx import MaxContext, Trial


@dataclass(frozen=True, slots=True)
class SweepStarted:
    """First event: everything known before the first point (store the run row now)."""

    header: RunHeader


@dataclass(frozen=True, slots=True)
class Progress:
    """About to measure ``mode`` at ``length``; ``done`` of ``total`` points finished."""

    done: int
    total: int
    mode: str
    length: int
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True, slots=True)
class PointResult:
    """A point measured successfully (``point.status == "ok"``)."""

    point: Point


@dataclass(frozen=True, slots=True)
class PointFailed:
    """A point that is data but not a measurement: ``oom``, ``error`` or ``skipped``."""

    point: Point


@dataclass(frozen=True, slots=True)
class AttentionResult:
    """The attention pass at one length: ``capture`` holds CPU numpy maps (``None``
    when ``status`` is ``oom``/``error``); ``entries`` are the run JSON's records."""

    length: int
    status: str
    capture: Any = None
    tokens: tuple[str, ...] | None = None
    entries: tuple[AttentionEntry, ...] = ()
    error: str | None = None


SweepEvent = Union[SweepStarted, Progress, PointResult, PointFailed, AttentionResult, QualityPoint, TelemetrySample]


# -- around the sweeps: loading models, the cells of a matrix ------------------------
@dataclass(frozen=True, slots=True)
class LoadedSummary:
    """What a front end may know of a loaded model: plain data, no torch objects."""

    spec: ModelSpec
    info: ModelInfo
    device: str
    dtype: str
    attn_implementation: str
    weights_bytes: int
    device_total_bytes: int | None
    gpu_uuids: tuple[str, ...] = ()  # the GPUs it occupies, for telemetry


@dataclass(frozen=True, slots=True)
class ModelLoading:
    """About to load ``spec`` (it can take a while)."""

    spec: ModelSpec


@dataclass(frozen=True, slots=True)
class ModelReady:
    summary: LoadedSummary


@dataclass(frozen=True, slots=True)
class CellFailed:
    """A cell that could not run (its model did not load, its kernel is not installed,
    its settings do not apply); the matrix goes on with the next."""

    spec: ModelSpec
    message: str


@dataclass(frozen=True, slots=True)
class CellFinished:
    spec: ModelSpec
    result: RunResult


MatrixEvent = Union[ModelLoading, ModelReady, CellFailed, CellFinished]

#: Everything a job yields: a matrix's (a sweep is a one-cell matrix) or a max-context
#: search's trials.
JobEvent = Union[SweepEvent, MatrixEvent, "Trial"]

#: What a job returns: a matrix's runs in measurement order, the max-context answer
#: (``None``: cancelled before it ran), or the loaded model's summary (a ``load`` job).
JobResult = Union[tuple[RunResult, ...], "MaxContext", LoadedSummary, None]
