"""Comparison of runs: align any number of runs on (mode, length), ratios against a
baseline, each run's largest successful length per mode, and the differences between
the machines and versions that produced them. Plain data; no Qt, no torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ctxscope.core.errors import BadInputError
from ctxscope.core.machine.interference import contention_summary
from ctxscope.core.results import MemoryStats, Point, RunResult
from ctxscope.core.units import plural

MODE_ORDER = ("prefill", "decode", "forward")


@dataclass(frozen=True, slots=True)
class RunKey:
    """What makes a run a different configuration (frozen: usable as a dict key)."""

    model: str
    revision: str | None
    dtype: str
    attn: str
    batch: int
    device: str
    rope: str | None = None  # RoPE scaling set on the config ("yarn:4"); None: as trained
    cache: str = "dynamic"  # the KV-cache strategy (core.kv_cache)

    @classmethod
    def of(cls, run: RunResult) -> RunKey:
        m, s = run.header.model, run.header.settings
        return cls(model=m.source, revision=m.revision, dtype=s.dtype, attn=s.attn_implementation,
                   batch=s.batch_size, device=s.device, rope=s.rope_scaling, cache=getattr(s, "cache", "dynamic"))

    def describe(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        rope = f" · RoPE {self.rope}" if self.rope else ""
        cache = f" · cache {self.cache}" if self.cache != "dynamic" else ""
        return f"{self.model}{rev} · {self.dtype} · {self.attn}{rope}{cache} · batch {self.batch} · {self.device}"


# Two different figures are called "peak" in ctxscope; they are never shown under one name.
# The memory a pass needed, as comparisons and reports show it:
PEAK_NAMES = {"allocator": "allocator peak", "model": "model peak"}
PEAK_MEANINGS = {"allocator": "the GPU allocator's peak during the pass (torch max_memory_allocated)",
                 "model": "weights + KV cache + state + activations of the pass (activations: the CPU "
                          "allocator's peak during the pass)"}
# ...and, beside it on CPU, the whole process's resident memory high-water (Python,
# libraries, allocator caches included): always larger, and it moves with the machine.
PROCESS_PEAK = "process peak (RSS)"
PROCESS_PEAK_MEANING = ("the whole process's resident memory high-water (Python, libraries and allocator caches "
                        "included)")


def peak_kind(mem: MemoryStats | None) -> str | None:
    """``"allocator"`` (GPU), ``"model"`` (CPU: no allocator to ask) or ``None``."""
    if mem is None:
        return None
    return "allocator" if mem.peak_allocated_bytes is not None else "model"


def peak_bytes(mem: MemoryStats | None) -> int | None:
    """The memory a point needed: the allocator peak on GPU, the model peak
    (weights + KV + state + activations) on CPU. Never the process RSS."""
    if mem is None:
        return None
    if mem.peak_allocated_bytes is not None:
        return mem.peak_allocated_bytes
    return mem.weights_bytes + mem.kv_cache_bytes + (mem.state_bytes or 0) + max(0, mem.activation_bytes or 0)


def _run_peak_kind(run: RunResult) -> str:
    kinds = {peak_kind(p.memory) for p in run.points} - {None}
    if kinds:
        return "allocator" if "allocator" in kinds else "model"
    return "allocator" if run.header.settings.device.startswith("cuda") else "model"


def peak_heading(runs: Sequence[RunResult]) -> str:
    """The column / axis name for :func:`peak_bytes` of these runs."""
    kinds = {_run_peak_kind(r) for r in runs}
    return PEAK_NAMES[kinds.pop()] if len(kinds) == 1 else "peak (allocator on GPU, model on CPU)"


def peak_note(runs: Sequence[RunResult]) -> str:
    """One sentence saying what the peak figures of these runs are (and, on CPU, what
    they are not)."""
    present = {_run_peak_kind(r) for r in runs}
    said = "; ".join(f"{PEAK_NAMES[k]} = {PEAK_MEANINGS[k]}" for k in PEAK_NAMES if k in present)
    if "model" not in present:
        return said + "."
    return f"{said}. Not the {PROCESS_PEAK}: {PROCESS_PEAK_MEANING}."


@dataclass(frozen=True, slots=True)
class Cell:
    """One run at one (mode, length); ``status`` is ``None`` where the run has no point."""

    status: str | None
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    tokens_per_s: float | None = None
    peak_bytes: int | None = None  # see peak_bytes(): allocator peak (GPU) or model peak (CPU)
    peak_kind: str | None = None  # "allocator" | "model"
    latency_ratio: float | None = None  # this run / baseline, median latency (> 1: slower)
    memory_ratio: float | None = None  # this run / baseline, peak memory


@dataclass(frozen=True, slots=True)
class Row:
    mode: str
    length: int
    cells: tuple[Cell, ...]  # one per run, in the comparison's run order


@dataclass(frozen=True, slots=True)
class Comparison:
    """Runs aligned on (mode, length). ``max_ok[i][mode]`` is run *i*'s largest length
    that ran (``None``: none did); ``limit[i][mode]`` the shortest that ran out of memory."""

    runs: tuple[RunResult, ...]
    keys: tuple[RunKey, ...]
    labels: tuple[str, ...]
    baseline: int
    modes: tuple[str, ...]
    rows: tuple[Row, ...]
    max_ok: tuple[dict[str, int | None], ...]
    first_oom: tuple[dict[str, int | None], ...]
    differences: tuple[str, ...]

    def rows_of(self, mode: str) -> list[Row]:
        return [r for r in self.rows if r.mode == mode]


def _by_position(run: RunResult) -> dict[tuple[str, int], Point]:
    # One pass per run (a search per cell made 10,000-point comparisons quadratic);
    # a run file may repeat a point: the last measurement wins.
    return {(p.mode, p.length): p for p in run.points}


def _cell(point: Point | None) -> Cell:
    if point is None:
        return Cell(status=None)
    lat = point.latency_ms if point.status == "ok" else None
    return Cell(status=point.status, median_ms=lat.median if lat else None, p10_ms=lat.p10 if lat else None,
                p90_ms=lat.p90 if lat else None, tokens_per_s=point.tokens_per_s if point.status == "ok" else None,
                peak_bytes=peak_bytes(point.memory) if point.status == "ok" else None,
                peak_kind=peak_kind(point.memory) if point.status == "ok" else None)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return value / base


_LABEL_FIELDS = ("model", "revision", "dtype", "attn", "rope", "cache", "batch", "device", "threads")
# Ever finer times until the runs that share a configuration differ.
_TIME_FORMATS = (("%H:%M", True), ("%H:%M:%S", True), ("%Y-%m-%d %H:%M", False), ("%Y-%m-%d %H:%M:%S", False))


def _field(run: RunResult, name: str) -> str | None:
    if name == "threads":
        threads = run.header.settings.threads
        return plural(threads, "thread") if threads else None
    value = getattr(RunKey.of(run), name)
    if name == "batch":
        return f"batch {value}"
    if name == "revision":
        return f"@{value}" if value else None
    if name == "rope":
        return f"RoPE {value}" if value else None
    if name == "cache":
        return f"{value} cache"
    return str(value)


def _when(run: RunResult, fmt: str) -> str:
    try:
        return datetime.fromisoformat(run.header.created).strftime(fmt)
    except ValueError:  # a hand-written file: its text as given
        return run.header.created


def _distinguish(runs: list[RunResult]) -> list[str]:
    """Suffixes that tell apart runs of one configuration: their start time, as coarse
    as still differs (the time of day when they share a date), else their ids."""
    dates = {_when(r, "%Y-%m-%d") for r in runs}
    for fmt, same_day_only in _TIME_FORMATS:
        if same_day_only and len(dates) > 1:
            continue
        times = [_when(r, fmt) for r in runs]
        if len(set(times)) == len(times):
            return times
    return [r.id for r in runs]


def run_labels(runs: Sequence[RunResult]) -> tuple[str, ...]:
    """Short labels that tell every run apart: the configuration fields that differ
    between the runs (``sdpa`` / ``eager``), else the model; runs that share a
    configuration get their start time (``preset:gpt2 (10:51)``). The one labelling
    used by every comparison: CLI, Markdown, HTML and the app's Compare tab."""
    runs = list(runs)
    parts: list[list[str]] = [[] for _ in runs]
    for name in _LABEL_FIELDS:
        values = [_field(r, name) for r in runs]
        if len(set(values)) > 1:
            for i, v in enumerate(values):
                if v is not None:
                    parts[i].append(v)
                elif name == "threads":
                    parts[i].append("default threads")
                elif name == "rope":
                    parts[i].append("RoPE as trained")
    labels = [" · ".join(p) if p else runs[i].header.model.source for i, p in enumerate(parts)]
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    for label, members in groups.items():
        if len(members) > 1:
            for i, suffix in zip(members, _distinguish([runs[i] for i in members])):
                labels[i] = f"{label} ({suffix})"
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):  # the same run given twice: number the copies
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label} #{seen[label]}"
    return tuple(labels)


def _differences(runs: list[RunResult]) -> tuple[str, ...]:
    notes = []
    envs = [r.header.environment for r in runs]
    checks = (
        ("device", [e.gpu_name or e.cpu for e in envs]),
        ("GPU driver", [e.driver for e in envs]),
        ("ctxscope version", [e.ctxscope for e in envs]),
        ("torch version", [e.torch for e in envs]),
        ("transformers version", [e.transformers for e in envs]),
        ("timer", [r.header.settings.timer for r in runs]),
        ("CPU threads", [r.header.settings.threads or "default" for r in runs]),
        ("KV cache class", [getattr(r.header.settings, "cache", "dynamic") for r in runs]),
    )
    for r, label in zip(runs, run_labels(runs)):  # a recurrent model timed on its slow reference code
        if r.header.environment.mixer_fallback:
            notes.append(f"{label}: {r.header.environment.mixer_fallback}")
    for what, values in checks:
        if len(set(values)) > 1:
            notes.append(f"different {what}: " + ", ".join(str(v) for v in values))
    weights = [r.header.model.random_weights for r in runs]
    if len(set(weights)) > 1:
        notes.append("some runs use random weights, others a checkpoint (latency and memory comparable; "
                     "attention maps are not)")
    for r in runs:  # timings taken while something else used the machine
        summary = contention_summary(r.points)
        if summary:
            notes.append(f"run {r.id}: {summary}")
    for r in runs:  # the whole id: a date prefix names every run of that day
        if r.status != "complete":
            ok = sum(p.status == "ok" for p in r.points)
            notes.append(f"run {r.id} {r.status}: {ok} of {plural(len(r.points), 'point')} measured")
    return tuple(notes)


def notes_heading(runs: Sequence[RunResult]) -> str:
    """What a report calls its block of notes: a single run has nothing to differ from."""
    return "Notes on this run" if len(runs) == 1 else "Differences between the runs"



def compare(runs: list[RunResult] | tuple[RunResult, ...], baseline: int = 0) -> Comparison:
    """Align ``runs`` on (mode, length); ratios are against ``runs[baseline]``."""
    runs = list(runs)
    if not runs:
        raise BadInputError("nothing to compare: give at least one run")
    if not 0 <= baseline < len(runs):
        raise BadInputError(f"baseline {baseline + 1} is not one of the {plural(len(runs), 'run')}")
    keys = [RunKey.of(r) for r in runs]
    modes_seen = {p.mode for r in runs for p in r.points}
    modes = tuple(m for m in MODE_ORDER if m in modes_seen) + tuple(sorted(modes_seen - set(MODE_ORDER)))
    rows = []
    indexed = [_by_position(r) for r in runs]
    for mode in modes:
        lengths = sorted({length for index in indexed for m, length in index if m == mode})
        for length in lengths:
            cells = [_cell(index.get((mode, length))) for index in indexed]
            base = cells[baseline]
            cells = [replace(c, latency_ratio=_ratio(c.median_ms, base.median_ms),
                             memory_ratio=_ratio(c.peak_bytes, base.peak_bytes)) for c in cells]
            rows.append(Row(mode=mode, length=length, cells=tuple(cells)))
    max_ok, first_oom = [], []
    for r in runs:
        max_ok.append({m: max((p.length for p in r.ok_points(m)), default=None) for m in modes})
        first_oom.append({m: min((p.length for p in r.points if p.mode == m and p.status == "oom"), default=None)
                          for m in modes})
    return Comparison(runs=tuple(runs), keys=tuple(keys), labels=run_labels(runs),
                      baseline=baseline, modes=modes, rows=tuple(rows), max_ok=tuple(max_ok),
                      first_oom=tuple(first_oom), differences=_differences(runs))


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"
