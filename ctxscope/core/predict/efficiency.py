"""Prediction against measurement, torch-free: the analytic lower-bound latency
(roofline: max of compute time and memory time), model FLOPs utilisation for prefill,
bandwidth utilisation for decode, where measured memory departs from the prediction,
and the fit latency ≈ a + b·L + c·L² with the length where attention's quadratic term
overtakes the linear one.

The run's ``analytic`` block (written at sweep time by :func:`ctxscope.core.predict.analytic.analytic_block`) holds per
length the KV bytes, prefill FLOPs, decode FLOPs and decode bytes, the weights bytes and
the device peak used; everything here reads only that block and the points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ctxscope.core.blocks import AnalyticBlock, AnalyticRow
from ctxscope.core.results import Point, RunHeader, RunResult

DEPARTURE = 0.10  # flag measured memory more than 10% away from the prediction


# rows list id → (the list, {length: row}). A report asks for every point's row: a
# linear search per point made a 10,000-point report quadratic (minutes). The list is
# kept alive with its index, so its id cannot be reused while cached.
_ROW_INDEX: dict[int, tuple[list[AnalyticRow], int, dict[int, AnalyticRow]]] = {}


def _row(analytic: AnalyticBlock | None, length: int) -> AnalyticRow | None:
    if not analytic:
        return None
    rows = analytic.get("rows")
    if not isinstance(rows, list):
        return None
    cached = _ROW_INDEX.get(id(rows))
    if cached is None or cached[0] is not rows or cached[1] != len(rows):
        index: dict[int, AnalyticRow] = {}
        for row in rows:  # the first row of a length wins, as the search did
            if isinstance(row, dict) and isinstance(row.get("length"), int):
                index.setdefault(row["length"], row)
        if len(_ROW_INDEX) >= 16:
            _ROW_INDEX.clear()
        cached = _ROW_INDEX[id(rows)] = (rows, len(rows), index)
    return cached[2].get(length)


def _peak(analytic: AnalyticBlock | None, dtype: str) -> tuple[float | None, float | None]:
    peak = analytic.get("peak") if analytic else None
    if not peak:
        return None, None
    flops = peak["flops"].get(dtype)
    return (float(flops) if flops else None, float(peak["bytes_per_s"]) if peak["bytes_per_s"] else None)


def work(analytic: AnalyticBlock | None, mode: str, length: int, batch: int = 1) -> tuple[float, float] | None:
    """(FLOPs, bytes moved) of one call of ``mode`` at ``length`` (rows are per batch 1)."""
    row = _row(analytic, length)
    if row is None or analytic is None:  # no row without an analytic block
        return None
    weights = float(analytic.get("weights_bytes") or 0)
    if mode == "decode":
        # The step's real traffic (cache read, concatenation copy) where the run recorded
        # it; older runs have only the minimum (weights + cache read once).
        flops, moved = row.get("decode_flops"), row.get("decode_traffic_bytes") or row.get("decode_bytes")
        if flops is None or moved is None:  # an encoder: no decode step
            return None
        return float(flops) * batch, weights + (float(moved) - weights) * batch
    # Prefill / forward: every weight read once, the KV cache written once.
    return float(row["prefill_flops"]) * batch, weights + float(row["kv_cache_bytes"]) * batch


def predicted_ms(analytic: AnalyticBlock | None, dtype: str, mode: str, length: int, batch: int = 1) -> float | None:
    """Roofline lower bound: max(FLOPs / peak FLOP/s, bytes / bandwidth), in ms."""
    w = work(analytic, mode, length, batch)
    flops_peak, bandwidth = _peak(analytic, dtype)
    if w is None or not flops_peak or not bandwidth:
        return None
    return max(w[0] / flops_peak, w[1] / bandwidth) * 1e3


def predicted_latency(header: RunHeader, mode: str) -> dict[int, float]:
    """The roofline lower bound (ms) at each of the run's lengths that has one."""
    s = header.settings
    return {n: ms for n in s.lengths
            if (ms := predicted_ms(header.analytic, s.dtype, mode, n, s.batch_size)) is not None}


def predicted_memory(header: RunHeader) -> dict[int, int]:
    """Analytic weights + KV cache (bytes) per length; empty for runs made before sweeps
    recorded their analytic block, or whose config it could not describe."""
    a = header.analytic or {}
    if a.get("weights_bytes") is None:
        return {}
    batch = header.settings.batch_size
    return {r["length"]: int(a["weights_bytes"] + r["kv_cache_bytes"] * batch) for r in a.get("rows") or []
            if isinstance(r, dict) and isinstance(r.get("length"), int)}


@dataclass(frozen=True, slots=True)
class PointEfficiency:
    predicted_ms: float | None
    mfu: float | None  # achieved FLOP/s ÷ peak (prefill / forward)
    bandwidth_util: float | None  # achieved bytes/s ÷ peak bandwidth (decode)
    predicted_memory_bytes: int | None  # weights + KV cache
    memory_departure: float | None  # (measured − predicted) ÷ predicted, when beyond ±10%


def point_efficiency(run: RunResult, point: Point) -> PointEfficiency:
    analytic, s = run.header.analytic, run.header.settings
    pred = predicted_ms(analytic, s.dtype, point.mode, point.length, point.batch_size)
    mfu = bw = None
    w = work(analytic, point.mode, point.length, point.batch_size)
    flops_peak, bandwidth = _peak(analytic, s.dtype)
    if point.status == "ok" and point.latency_ms and w is not None:
        seconds = point.latency_ms.median / 1e3
        if point.mode == "decode" and bandwidth:
            bw = w[1] / seconds / bandwidth
        elif point.mode != "decode" and flops_peak:
            mfu = w[0] / seconds / flops_peak
    row = _row(analytic, point.length)
    mem_pred = departure = None
    if row is not None and analytic is not None and analytic.get("weights_bytes") is not None:
        # Per point, not predicted_memory(): the point's own batch size counts; the cache
        # storage the mode leaves allocated where the run recorded it.
        stored = row.get("decode_kv_storage_bytes") if point.mode == "decode" else row.get("prefill_kv_storage_bytes")
        kv = row["kv_cache_bytes"] if stored is None or not point.memory or point.mode == "forward" else stored
        mem_pred = int(analytic["weights_bytes"] + (0 if point.mode == "forward" else kv) * point.batch_size)
        if point.status == "ok" and point.memory is not None and mem_pred > 0:
            measured = point.memory.weights_bytes + point.memory.kv_cache_bytes
            rel = (measured - mem_pred) / mem_pred
            departure = rel if abs(rel) > DEPARTURE else None
    return PointEfficiency(pred, mfu, bw, mem_pred, departure)


#: Distinct lengths a fit needs: three coefficients through three points always give
#: R² = 1, so with fewer than five the fit describes nothing and is not shown.
MIN_FIT_LENGTHS = 5
_SIGMAS = 2.0  # a coefficient is "negative" only when below zero by more than this many standard errors
_MATTERS = 0.01  # ...and when its term is more than 1% of the latency it would describe


@dataclass(frozen=True, slots=True)
class LatencyFit:
    """latency_ms ≈ a + b·L + c·L²; ``crossover`` is the L where c·L² = b·L (``None``
    when either term is not positive beyond its uncertainty, or the fit is not physical).

    ``errors`` are the standard errors of (a, b, c); ``problems`` names coefficients
    that are negative beyond their uncertainty — time cannot shrink as the context
    grows, so such a fit is reported as a warning, never drawn as a model."""

    a: float
    b: float
    c: float
    r2: float
    crossover: float | None
    n: int = 0
    errors: tuple[float, float, float] = (0.0, 0.0, 0.0)
    problems: tuple[str, ...] = ()

    def __call__(self, length: float) -> float:
        return self.a + self.b * length + self.c * length * length

    @property
    def physical(self) -> bool:
        """False when a coefficient is negative beyond its uncertainty."""
        return not self.problems

    def describe_problems(self) -> str:
        """One line: why this fit is not a model of the measurements."""
        return ("not physical: " + ", ".join(self.problems)
                + " — the medians do not follow a + bL + cL² (noise, or a change of kernel along L)")


def _impossible(coefs: np.ndarray, errors: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[str, ...]:
    scale = (float(y.min()), float(y.max()), float(y.max()))  # what a, b·L, c·L² would be part of
    terms = (1.0, float(x.max()), float(x.max()) ** 2)
    problems = []
    for name, value, err, term, size in zip("abc", coefs, errors, terms, scale):
        if value < -_SIGMAS * err and abs(value) * term > _MATTERS * size:
            problems.append(f"{name} = {value:.3g} ± {err:.2g} < 0")
    return tuple(problems)


def fit_latency(lengths: Sequence[float], latencies_ms: Sequence[float]) -> LatencyFit | None:
    """Least squares over the points (relative errors: each point weighted by 1/latency,
    so short and long contexts count alike). ``None`` below :data:`MIN_FIT_LENGTHS`
    distinct lengths (see :func:`fit_note`)."""
    x = np.asarray(lengths, dtype=float)
    y = np.asarray(latencies_ms, dtype=float)
    if len(np.unique(x)) < MIN_FIT_LENGTHS or np.any(y <= 0) or not np.all(np.isfinite(y)):
        return None
    design = np.stack([np.ones_like(x), x, x * x], axis=1) / y[:, None]
    coefs, *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    a, b, c = (float(v) for v in coefs)
    residual = np.ones_like(y) - design @ coefs
    dof = max(1, len(y) - 3)
    try:  # covariance of the weighted fit: σ² (XᵀX)⁻¹
        cov = np.linalg.inv(design.T @ design) * float(residual @ residual) / dof
        errors = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    except np.linalg.LinAlgError:
        errors = np.full(3, np.inf)
    model = a + b * x + c * x * x
    ss_res = float(np.sum((y - model) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2)) or 1.0
    problems = _impossible(coefs, errors, x, y)
    # A crossing only where both terms are there beyond their uncertainty: b / c with a
    # c of 1e-19 ± 1e-19 "crosses" at 10¹⁸ tokens.
    significant = b > _SIGMAS * errors[1] and c > _SIGMAS * errors[2]
    crossover = float(b / c) if significant and not problems else None
    return LatencyFit(a, b, c, 1 - ss_res / ss_tot, crossover, n=len(y),
                      errors=(float(errors[0]), float(errors[1]), float(errors[2])), problems=problems)


def fit_run(run: RunResult, mode: str) -> LatencyFit | None:
    """The fit of ``mode``'s successful medians, or ``None`` when too few lengths ran."""
    ok = [(p.length, p.latency_ms.median) for p in run.ok_points(mode) if p.latency_ms]
    return fit_latency([n for n, _ in ok], [ms for _, ms in ok])


def fit_note(run: RunResult, mode: str, fit: LatencyFit | None = None) -> str | None:
    """Why the fit of ``mode`` is not shown as a model (too few lengths, or impossible
    coefficients); ``None`` when it is a fit worth drawing."""
    fit = fit if fit is not None else fit_run(run, mode)
    if fit is None:
        n = len({p.length for p in run.ok_points(mode)})
        return f"too few points for a fit (n < {MIN_FIT_LENGTHS}): {n} length{'s' if n != 1 else ''} ran"
    return None if fit.physical else fit.describe_problems()
