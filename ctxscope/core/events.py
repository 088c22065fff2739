"""The one event vocabulary of ctxscope's jobs: what :func:`ctxscope.core.sweep.run_sweep`,
a matrix (:mod:`ctxscope.core.matrix`) and the max-context search yield, whether the job
runs here, over SSH or on a Ray cluster (:mod:`ctxscope.core.launch`). Frozen plain
data, safe to hand to another thread; front ends ``match`` on these types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.errors import BadInputError
from ctxscope.core.quality.records import QualityPoint
from ctxscope.core.results import ModelInfo, Point, RunHeader, RunResult
from ctxscope.core.spec import ModelSpec
from ctxscope.core.units import fmt_bytes, fmt_mib



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


# -- records the events carry: telemetry, the memory guard's question, the search ------
@dataclass(frozen=True, slots=True)
class TelemetrySample:
    """One reading at ``t`` (``time.perf_counter()``). GPU fields are ``None`` without
    NVML; over several GPUs: utilisation averaged, memory, power and this process's
    memory summed, temperature the hottest, SM clock the slowest."""

    t: float
    cpu_percent: float
    rss_bytes: int
    gpu_util_percent: float | None = None
    gpu_memory_used_bytes: int | None = None
    gpu_memory_total_bytes: int | None = None
    power_w: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: float | None = None
    process_memory_bytes: int | None = None  # this process on the GPUs (context + allocator)
    other_processes: int | None = None  # other processes holding a context on the GPUs
    slowdown_mask: int | None = None  # NVML clock-event reasons that slow the clocks


@dataclass(frozen=True, slots=True)
class MemoryCheck:
    """The guard's verdict on one point (bytes). ``available`` is ``None`` where the
    device cannot say (then the point always runs)."""

    mode: str
    length: int
    need_bytes: int
    kv_bytes: int
    available_bytes: int | None
    where: str

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.need_bytes <= self.available_bytes

    def reason(self) -> str:
        from ctxscope.core.units import fmt_bytes

        return (f"predicted to need at least {fmt_bytes(self.need_bytes)} (KV cache {fmt_bytes(self.kv_bytes)} + "
                f"activations), only {fmt_bytes(self.available_bytes)} available on {self.where}; "
                f"--force runs it anyway")


#: What a trial's peak is, by the ``measure`` code a trial carries.
MEASURES = {
    "reserved": "the GPU allocator's reserved peak during the pass",
    "model": "the model peak: weights + the CPU allocator's peak during the pass (repeatable)",
    "rss": "the process's resident-memory high-water (the CPU allocator's figure was unavailable)",
}


@dataclass(frozen=True, slots=True)
class Trial:
    length: int
    fits: bool
    status: str  # "ok", "oom" or "over budget"
    peak_bytes: int | None
    seconds: float
    measure: str = "reserved"  # a key of MEASURES: what peak_bytes is

    def line(self, number: int, budget_bytes: int | None) -> str:
        """'trial  3: L=8192  over budget  peak 1,000.4 MiB > 1,000.0 MiB  2.10 s' — MiB
        precision, and the comparison that decided it."""
        cmp = "" if self.peak_bytes is None or budget_bytes is None else (" > " if self.status == "over budget" else " ≤ ") + fmt_mib(budget_bytes)
        return (f"trial {number:2d}: L={self.length:<8d} {self.status:12s} peak {fmt_mib(self.peak_bytes):>13s}"
                f"{cmp}  {self.seconds:6.2f} s")


@dataclass(frozen=True, slots=True)
class MaxContext:
    mode: str
    budget_bytes: int
    granularity: int
    predicted: int | None  # weights + KV alone fit up to here (an upper bound)
    largest_fit: int | None
    smallest_fail: int | None
    trials: tuple[Trial, ...]
    stopped_at_limit: bool = False

    def answer(self) -> str:
        """The answer in words (the CLI and the app say it the same way)."""
        if self.largest_fit is None:
            return "none: even the smallest trial did not fit"
        if self.stopped_at_limit:
            return f"{self.largest_fit:,} tokens (the model's maximum positions; nothing longer was tried)"
        return f"{self.largest_fit:,} tokens (fails at {self.smallest_fail:,}: within {self.granularity})"

    @property
    def measure(self) -> str:
        """What the budget was compared with, in words."""
        codes = [t.measure for t in self.trials if t.peak_bytes is not None]
        return MEASURES.get(codes[-1] if codes else "reserved", codes[-1] if codes else "")

    def summary(self) -> str:
        """One sentence: the mode, the budget, the answer, the analytic bound, the trials,
        and what the budget was compared with."""
        bound = (f"; analytic upper bound (weights + KV cache + state only, activations ignored) {self.predicted:,} "
                 "tokens" if self.predicted else "")
        # The MiB figure only where the short one rounds (1.0 GiB may be 1,020 MiB).
        shown = fmt_bytes(self.budget_bytes)
        exact = "" if _reads_back(shown, self.budget_bytes) else f" ({fmt_mib(self.budget_bytes)})"
        return (f"longest {self.mode} that runs within {fmt_bytes(self.budget_bytes)}{exact}: "
                f"{self.answer()}{bound}; {len(self.trials)} trial{'s' if len(self.trials) != 1 else ''}; "
                f"the budget was compared with {self.measure}")


def _reads_back(text: str, value: int) -> bool:
    from ctxscope.core.units import parse_size

    try:
        return parse_size(text.replace(" ", ""), "size") == value
    except BadInputError:
        return False



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
JobEvent = Union[SweepEvent, MatrixEvent, Trial]

#: What a job returns: a matrix's runs in measurement order, the max-context answer
#: (``None``: cancelled before it ran), or the loaded model's summary (a ``load`` job).
JobResult = Union[tuple[RunResult, ...], MaxContext, LoadedSummary, None]
