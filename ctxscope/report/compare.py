"""Comparison of runs: align any number of runs on (mode, length), ratios against a
baseline, each run's largest successful length per mode, and the differences between
the machines and versions that produced them. Plain data; no Qt, no torch."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ctxscope.core.errors import BadInputError
from ctxscope.core.results import MemoryStats, Point, RunResult

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

    @classmethod
    def of(cls, run: RunResult) -> RunKey:
        m, s = run.header.model, run.header.settings
        return cls(model=m.source, revision=m.revision, dtype=s.dtype, attn=s.attn_implementation,
                   batch=s.batch_size, device=s.device)

    def describe(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.model}{rev} · {self.dtype} · {self.attn} · batch {self.batch} · {self.device}"


def peak_bytes(mem: MemoryStats | None) -> int | None:
    """The memory a point needed: the allocator peak on GPU, the stacked layers on CPU."""
    if mem is None:
        return None
    if mem.peak_allocated_bytes is not None:
        return mem.peak_allocated_bytes
    return mem.weights_bytes + mem.kv_cache_bytes + max(0, mem.activation_bytes or 0)


@dataclass(frozen=True, slots=True)
class Cell:
    """One run at one (mode, length); ``status`` is ``None`` where the run has no point."""

    status: str | None
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    tokens_per_s: float | None = None
    peak_bytes: int | None = None
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


def _last_point(run: RunResult, mode: str, length: int) -> Point | None:
    found = None
    for p in run.points:  # a run file may repeat a point; the last measurement wins
        if p.mode == mode and p.length == length:
            found = p
    return found


def _cell(point: Point | None) -> Cell:
    if point is None:
        return Cell(status=None)
    lat = point.latency_ms if point.status == "ok" else None
    return Cell(status=point.status, median_ms=lat.median if lat else None, p10_ms=lat.p10 if lat else None,
                p90_ms=lat.p90 if lat else None, tokens_per_s=point.tokens_per_s if point.status == "ok" else None,
                peak_bytes=peak_bytes(point.memory) if point.status == "ok" else None)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return value / base


def labels_for(keys: list[RunKey], ids: list[str]) -> tuple[str, ...]:
    """Short distinct labels: only the key fields that differ between runs (e.g.
    ``sdpa`` / ``eager``), the run id added where two runs share a configuration."""
    parts: list[list[str]] = [[] for _ in keys]
    for name in ("model", "revision", "dtype", "attn", "batch", "device"):
        values = [getattr(k, name) for k in keys]
        if len(set(values)) > 1:
            for i, v in enumerate(values):
                parts[i].append(f"batch {v}" if name == "batch" else f"@{v}" if name == "revision" and v else str(v))
    labels = [" · ".join(p) if p else keys[i].model for i, p in enumerate(parts)]
    counts = {lab: labels.count(lab) for lab in labels}
    return tuple(f"{lab} ({ids[i][:8]})" if counts[lab] > 1 else lab for i, lab in enumerate(labels))


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
    )
    for what, values in checks:
        if len(set(values)) > 1:
            notes.append(f"different {what}: " + ", ".join(str(v) for v in values))
    weights = [r.header.model.random_weights for r in runs]
    if len(set(weights)) > 1:
        notes.append("some runs use random weights, others a checkpoint (latency and memory comparable; "
                     "attention maps are not)")
    unfinished = [r.id[:8] for r in runs if r.status != "complete"]
    if unfinished:
        notes.append("not complete: " + ", ".join(unfinished))
    return tuple(notes)


def compare(runs: list[RunResult] | tuple[RunResult, ...], baseline: int = 0) -> Comparison:
    """Align ``runs`` on (mode, length); ratios are against ``runs[baseline]``."""
    runs = list(runs)
    if not runs:
        raise BadInputError("nothing to compare: give at least one run")
    if not 0 <= baseline < len(runs):
        raise BadInputError(f"baseline {baseline + 1} is not one of the {len(runs)} runs")
    keys = [RunKey.of(r) for r in runs]
    modes_seen = {p.mode for r in runs for p in r.points}
    modes = tuple(m for m in MODE_ORDER if m in modes_seen) + tuple(sorted(modes_seen - set(MODE_ORDER)))
    rows = []
    for mode in modes:
        lengths = sorted({p.length for r in runs for p in r.points if p.mode == mode})
        for length in lengths:
            cells = [_cell(_last_point(r, mode, length)) for r in runs]
            base = cells[baseline]
            cells = [replace(c, latency_ratio=_ratio(c.median_ms, base.median_ms),
                             memory_ratio=_ratio(c.peak_bytes, base.peak_bytes)) for c in cells]
            rows.append(Row(mode=mode, length=length, cells=tuple(cells)))
    max_ok, first_oom = [], []
    for r in runs:
        max_ok.append({m: max((p.length for p in r.ok_points(m)), default=None) for m in modes})
        first_oom.append({m: min((p.length for p in r.points if p.mode == m and p.status == "oom"), default=None)
                          for m in modes})
    return Comparison(runs=tuple(runs), keys=tuple(keys), labels=labels_for(keys, [r.id for r in runs]),
                      baseline=baseline, modes=modes, rows=tuple(rows), max_ok=tuple(max_ok),
                      first_oom=tuple(first_oom), differences=_differences(runs))


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"
