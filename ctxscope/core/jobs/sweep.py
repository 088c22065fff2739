"""The sweep: a plain generator over (length, mode) points.

The CLI iterates it, tests ``list()`` it and the GUI wraps it in a worker thread; it
never imports Qt. Cancellation is a ``threading.Event`` checked between calls.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import torch

from ctxscope.core.blocks import AttentionEntry
from ctxscope.core.machine.devices import dtype_name
from ctxscope.core.predict.analytic import analytic_block
from ctxscope.core.machine.environment import collect_environment
from ctxscope.core.errors import CONTEXT_LOST, BadInputError
from ctxscope.core.jobs.eta import Eta, Policy
from ctxscope.core.events import AttentionResult, PointFailed, PointResult, Progress, SweepEvent, SweepStarted
from ctxscope.core.predict.guard import MemoryCheck, available_bytes, check_point
from ctxscope.core.jobs.launch import drive as drive  # re-exported: written once, with the launchers
from ctxscope.core.model.loading import LoadedModel
from ctxscope.core.measure.measurer import Measurer
from ctxscope.core.model.modelinfo import modes_of
from ctxscope.core.machine import nvml
from ctxscope.core.machine.interference import contention, isolation_problem
from ctxscope.core.measure.memory import classify_failure, is_context_error, model_devices, release
from ctxscope.core.results import Point, RunHeader, RunResult, Settings
from ctxscope.core.attention.sweep_pass import prepare as prepare_attention
from ctxscope.core.attention.sweep_pass import run_attention
from ctxscope.core.attention.sweep_pass import settings_of as attention_settings
from ctxscope.core.quality.run import QualityPlan, prepare as prepare_quality, run_quality
from ctxscope.core.spec import MODES, SweepConfig
from ctxscope.core.machine.telemetry import TelemetrySampler, summarize
from ctxscope.core.measure.timing import Cancelled


def new_run_id() -> str:
    """Sortable and unique: ``20261123-142501-a1b2c3``."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def validate(loaded: LoadedModel, cfg: SweepConfig) -> tuple[str, ...]:
    """Check a configuration against a model before anything runs; return the modes.

    Raises
    ------
    BadInputError
        For an unknown or unsupported mode, an empty length list, a bad batch size or
        repetition policy, or lengths beyond the model's maximum positions (unless
        ``allow_beyond_max``).
    """
    allowed = modes_of(loaded.info)
    modes = cfg.modes or allowed
    if cfg.only_applicable_modes and cfg.modes:
        # A front end that offered every mode before it knew the model: keep the ones it has.
        modes = tuple(m for m in cfg.modes if m in allowed)
        if not modes:
            raise BadInputError(f"{loaded.info.source} supports only {', '.join(allowed)}: choose one of those modes")
    for mode in modes:
        if mode not in MODES:
            raise BadInputError(f"unknown mode {mode!r}: use {', '.join(MODES)}")
        if mode not in allowed:
            kind = "a decoder" if loaded.info.is_decoder else "an encoder"
            raise BadInputError(f"mode {mode!r} does not apply: {loaded.info.source} is {kind} (modes: {', '.join(allowed)})")
    if not cfg.lengths or any(length <= 0 for length in cfg.lengths):
        raise BadInputError("lengths must be a non-empty list of positive token counts")
    if cfg.batch_size <= 0:
        raise BadInputError(f"batch size must be at least 1, not {cfg.batch_size}")
    from ctxscope.core.measure.kv_cache import KVOptions, check_strategy

    check_strategy(cfg.cache, loaded.config, loaded.device.type,
                   KVOptions(group_size=cfg.kv_group_size, residual=cfg.kv_residual), is_decoder=loaded.info.is_decoder)
    window = loaded.info.sliding_window
    if cfg.cache == "static" and window and max(cfg.lengths) + 1 > window:
        # A static sliding layer longer than its window rolls over and cannot be cropped
        # back to the same depth: decode at depth L would not stay at L.
        raise BadInputError(f"--cache static: {loaded.info.source} has {window}-token sliding windows; lengths "
                            f"must stay below {window} (the dynamic cache measures any length)")
    if cfg.isolation not in ("off", "strict"):
        raise BadInputError(f"unknown isolation {cfg.isolation!r}: use off or strict")
    if cfg.threads is not None and cfg.threads < 1:
        raise BadInputError(f"threads must be at least 1, not {cfg.threads}")
    if cfg.warmup < 1 or cfg.min_repeats < 1 or cfg.max_repeats < cfg.min_repeats or cfg.budget_s < 0:
        raise BadInputError("repetition policy: need warmup ≥ 1, min-repeats ≥ 1, max-repeats ≥ min-repeats, budget ≥ 0")
    hard = loaded.info.position_limit
    if hard and max(cfg.lengths) > hard:
        # Even with --allow-beyond-max: a learned table has no row for these positions
        # (on CUDA the lookup is a device-side assert that kills the CUDA context).
        too_long = sorted(n for n in cfg.lengths if n > hard)
        raise BadInputError(f"{loaded.info.source} has a learned table of {hard} positions: length {too_long[0]} "
                            f"cannot run at all{' (nor ' + str(len(too_long) - 1) + ' more)' if len(too_long) > 1 else ''}")
    from ctxscope.core.lengths import beyond_positions

    if not cfg.allow_beyond_max and (problem := beyond_positions(loaded.info.max_positions, cfg.lengths)):
        raise BadInputError(problem)
    return tuple(dict.fromkeys(modes))


def _settings(loaded: LoadedModel, cfg: SweepConfig, modes: tuple[str, ...], timer: str) -> Settings:
    return Settings(device=str(loaded.device), dtype=dtype_name(loaded.dtype), attn_implementation=loaded.attn_implementation,
                    batch_size=cfg.batch_size, modes=modes, lengths=tuple(sorted(set(cfg.lengths))), warmup=cfg.warmup,
                    seed=cfg.seed, min_repeats=cfg.min_repeats, max_repeats=cfg.max_repeats, budget_s=cfg.budget_s,
                    target_rel_iqr=cfg.target_rel_iqr, continue_after_oom=cfg.continue_after_oom,
                    allow_beyond_max=cfg.allow_beyond_max, device_map=loaded.device_map,
                    threads=torch.get_num_threads(), timer=timer,
                    reuse_prefill_cache=cfg.reuse_prefill_cache, attention=attention_settings(cfg), force=cfg.force,
                    cache=cfg.cache, kv_options=_kv_options(cfg), rope_scaling=loaded.rope_scaling,
                    breakdown=cfg.breakdown)


def _kv_options(cfg: SweepConfig) -> dict[str, Any] | None:
    from ctxscope.core.measure.kv_cache import DEFAULT_GROUP_SIZE, DEFAULT_RESIDUAL, GROUP_WISE, int_backend

    if cfg.cache not in GROUP_WISE:
        return None
    return {"backend": int_backend(), "group_size": cfg.kv_group_size or DEFAULT_GROUP_SIZE,
            "residual": DEFAULT_RESIDUAL if cfg.kv_residual is None else cfg.kv_residual}


def run_sweep(loaded: LoadedModel, cfg: SweepConfig, *, stop: threading.Event | None = None,
              run_id: str | None = None,
              confirm: Callable[[MemoryCheck], bool] | None = None) -> Generator[SweepEvent, None, RunResult]:
    """Measure every (length, mode) point of ``cfg`` on ``loaded``.

    Yields :class:`SweepStarted` first, then :class:`Progress` before each point,
    :class:`PointResult` / :class:`PointFailed` after it and telemetry samples between
    points; returns the :class:`RunResult` (``status`` ``complete`` or ``cancelled``).
    Out-of-memory is data: the point gets status ``oom``, memory is released, longer
    lengths of that mode are skipped (unless ``continue_after_oom``) and the model
    stays usable. A point the memory guard predicts cannot fit is skipped with the
    reason unless ``cfg.force`` or ``confirm(check)`` (a front end asking its user)
    says to run it. Raises :class:`BadInputError` before yielding if ``cfg`` is invalid.
    """
    modes = validate(loaded, cfg)
    tokenizer = prepare_attention(loaded, cfg)  # bad attention input fails here, before any work
    quality = prepare_quality(loaded, cfg.quality, cfg.lengths) if cfg.quality is not None else None
    if quality is not None and cfg.cache != "dynamic":
        from ctxscope.core.measure.kv_cache import KVOptions, factory

        # The quality passes read their targets through the strategy's cache: the loss
        # recorded is what the strategy does to the model.
        quality.cache = factory(cfg.cache, loaded.model.config, KVOptions(cfg.kv_group_size, cfg.kv_residual))
    if cfg.isolation == "strict":
        devices = model_devices(loaded.model) if loaded.device.type == "cuda" else ()
        uuids = [u for d in devices if (u := nvml.torch_uuid(d.index or 0)) is not None]
        if devices and len(uuids) < len(devices):
            raise BadInputError("--isolation strict: the GPUs cannot be identified in NVML, so isolation cannot be checked")
        problem = isolation_problem(uuids, cpu=loaded.device.type == "cpu")
        if problem:
            raise BadInputError(f"--isolation strict: {problem}; not starting")
    threads_before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return (yield from _sweep(loaded, cfg, modes, tokenizer, stop, run_id, confirm, quality))
    finally:
        torch.set_num_threads(threads_before)


def _sweep(loaded: LoadedModel, cfg: SweepConfig, modes: tuple[str, ...], tokenizer: object,
           stop: threading.Event | None, run_id: str | None,
           confirm: Callable[[MemoryCheck], bool] | None,
           quality: QualityPlan | None = None) -> Generator[SweepEvent, None, RunResult]:
    measurer = Measurer(loaded, cfg, stop, modes=modes)
    settings = _settings(loaded, cfg, modes, measurer.timer.name)
    if quality is not None:
        settings = replace(settings, quality=quality.settings)
    from ctxscope.core.model.kernels import mixer_fallback

    environment = replace(collect_environment(loaded.device), mixer_fallback=mixer_fallback(loaded.info.layer_kinds))
    header = RunHeader(id=run_id or new_run_id(), created=_now(), model=loaded.info, settings=settings,
                       environment=environment,
                       analytic=analytic_block(loaded.config, settings.lengths, settings.dtype,
                                               environment.gpu_name if loaded.device.type == "cuda" else environment.cpu,
                                               cache=cfg.cache))
    if cfg.breakdown and header.analytic is not None and "error" not in header.analytic:
        from ctxscope.core.predict.analytic import attention_crossover

        header = replace(header, analytic={**header.analytic,
                                           "breakdown": attention_crossover(loaded.config, settings.dtype)})
    yield SweepStarted(header)
    lengths = header.settings.lengths
    passes = modes + (("attention",) if cfg.attention is not None else ())
    passes += ("quality",) if quality is not None and quality.note is None else ()
    plan = [(length, mode) for length in lengths for mode in passes]
    attention: list[AttentionEntry] = []
    cap = loaded.info.position_limit or (None if cfg.allow_beyond_max else loaded.info.max_positions)
    eta = Eta(plan, Policy(cfg.warmup, cfg.min_repeats, cfg.max_repeats, cfg.budget_s, cap, cfg.continue_after_oom))
    points: list[Point] = []
    failed_modes: set[str] = set()
    status = "complete"
    error: str | None = None
    t0 = time.perf_counter()
    with TelemetrySampler(cfg.telemetry_hz, measurer.uuids) as telemetry:
        try:
            for done, (length, mode) in enumerate(plan):
                if stop is not None and stop.is_set():
                    status = "cancelled"
                    break
                elapsed = time.perf_counter() - t0
                eta.start(done, elapsed)
                yield Progress(done=done, total=len(plan), mode=mode, length=length, elapsed_s=elapsed,
                               eta_s=eta.remaining())
                if mode == "attention":
                    result = _attention_point(loaded, cfg, length, tokenizer, header.id, failed_modes, measurer)
                    attention.extend(result.entries)
                    eta.measured(mode, result.status)
                    yield result
                    yield from telemetry.drain()
                    continue
                if mode == "quality":
                    measurer.discard_handoff()  # free the prefill cache kept for decode
                    assert quality is not None
                    finished = yield from run_quality(loaded, quality, length, seed=cfg.seed, stop=stop,
                                                      allow_beyond_max=cfg.allow_beyond_max,
                                                      continue_after_oom=cfg.continue_after_oom)
                    release(measurer.devices or loaded.device)  # the next timed point's reserved peak is its own
                    yield from telemetry.drain()
                    if not finished:
                        status = "cancelled"
                        break
                    continue
                try:
                    point = _measure_point(measurer, mode, length, cfg, failed_modes,
                                           lambda: _guard(loaded, header, mode, length, cfg, confirm))
                except DeviceLost as lost:
                    points.append(lost.point)
                    yield PointFailed(lost.point)
                    status, error = "failed", str(lost)
                    break
                if point is None:
                    status = "cancelled"
                    break
                samples = telemetry.drain()  # taken while this point ran (and its Progress was shown)
                if point.status == "ok":
                    summary = summarize(samples, measurer.last_window)
                    point = replace(point, telemetry=summary, contention=contention(summary) if summary else None)
                    if cfg.breakdown and point.latency_ms is not None:
                        from ctxscope.core.breakdown.run import breakdown_of

                        point = replace(point, breakdown=breakdown_of(measurer, mode, length, point.latency_ms.median))
                points.append(point)
                lat = point.latency_ms
                eta.measured(mode, point.status, lat.median if lat else None, lat.n if lat else None)
                yield PointResult(point) if point.status == "ok" else PointFailed(point)
                yield from samples
        finally:
            measurer.discard_handoff()
            release(measurer.devices or loaded.device)  # never raises: a lost context must not mask the run
    return RunResult(header=header, status=status, points=tuple(points), finished=_now(), attention=tuple(attention),
                     error=error, quality=quality.result if quality is not None else None)


class DeviceLost(Exception):
    """A CUDA error that leaves the process's CUDA context unusable (a device-side
    assert, an illegal access): every later call would fail the same way, so the sweep
    stops, keeping what it measured. ``point`` is the failed point."""

    def __init__(self, point: Point) -> None:
        super().__init__(CONTEXT_LOST)
        self.point = point


def _attention_point(loaded: LoadedModel, cfg: SweepConfig, length: int, tokenizer: object, run_id: str,
                     failed_modes: set[str], measurer: Measurer) -> AttentionResult:
    if "attention" in failed_modes and not cfg.continue_after_oom:
        error = "the attention pass ran out of memory at a shorter length"
        return AttentionResult(length=length, status="skipped", error=error,
                               entries=({"length": length, "status": "skipped", "error": error, "stats": {}},))
    measurer.discard_handoff()  # free the prefill cache kept for decode: the capture needs the room
    result = run_attention(loaded, cfg, length, tokenizer, run_id)
    if result.status == "oom":
        failed_modes.add("attention")
    return result


def _guard(loaded: LoadedModel, header: RunHeader, mode: str, length: int, cfg: SweepConfig,
           confirm: Callable[[MemoryCheck], bool] | None) -> str | None:
    """Why the point must not run (the guard's reason), or ``None`` to run it."""
    check = check_point(loaded, header.analytic, mode, length, cfg.batch_size, available_bytes(loaded.device))
    if check.fits or cfg.force or (confirm is not None and confirm(check)):
        return None
    return check.reason()


def _measure_point(measurer: Measurer, mode: str, length: int, cfg: SweepConfig, failed_modes: set[str],
                   guard: Callable[[], str | None] = lambda: None) -> Point | None:
    """One point as data; ``None`` when cancelled mid-point (the partial point is dropped)."""
    def unmeasured(status: str, error: str) -> Point:
        return Point(mode=mode, length=length, batch_size=cfg.batch_size, status=status, error=error)

    if mode in failed_modes and not cfg.continue_after_oom:
        return unmeasured("skipped", f"{mode} ran out of memory at a shorter length")
    info = measurer.loaded.info
    # Decoding at depth L feeds the token at position L: it needs L + 1 positions. A
    # learned table is a hard limit; otherwise --allow-beyond-max lifts it.
    cap = info.position_limit or (None if cfg.allow_beyond_max else info.max_positions)
    if mode == "decode" and cap and length >= cap:
        return unmeasured("skipped",
                          f"decode at depth {length} needs position {length}, beyond the model's {cap}")
    refused = guard()
    if refused is not None:
        return unmeasured("skipped", refused)
    failure: Point | None = None
    lost = False
    try:
        point = measurer.measure(mode, length)
    except Cancelled:
        measurer.discard_handoff()
        return None
    except Exception as exc:  # any model failure is data; the sweep goes on
        status, message = classify_failure(exc)
        if status == "oom":
            failed_modes.add(mode)
        failure = unmeasured(status, message)
        lost = is_context_error(exc)
    if failure is not None:
        # Outside the except block: the traceback (whose frames hold the failed pass's
        # tensors) is gone, so collecting actually frees the memory.
        measurer.discard_handoff()
        cleanup = release(measurer.devices or measurer.device, collect=True)
        if lost or (cleanup is not None and measurer.device.type == "cuda"):
            raise DeviceLost(failure)
        return failure
    release(measurer.devices or measurer.device)  # cached blocks back: the next point's reserved peak is its own
    return point
