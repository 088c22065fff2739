"""Background telemetry: NVML (utilisation, memory, power, temperature, SM clock, who
else is on the GPU, clock slowdowns) and psutil (CPU %, RSS) at about 10 Hz, for the
GPUs the model occupies (by UUID). Degrades to psutil only without NVIDIA.

Samples carry ``time.perf_counter()`` timestamps, so a point's summary can keep only
those inside its timed window (warm-ups, the memory pass and decode's untimed prefill
are not what the point's figures describe).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypedDict, TypeVar

import psutil

from ctxscope.core import nvml as _nvml
from ctxscope.core.blocks import TelemetrySummary
from ctxscope.core.events import TelemetrySample as TelemetrySample  # a reading is plain data (an event)
from ctxscope.core.interference import Window



class GpuFields(TypedDict, total=False):
    """The GPU part of a :class:`TelemetrySample` (all keys or none)."""

    gpu_util_percent: float | None
    gpu_memory_used_bytes: int | None
    gpu_memory_total_bytes: int | None
    power_w: float | None
    temperature_c: float | None
    sm_clock_mhz: float | None
    process_memory_bytes: int | None
    other_processes: int | None
    slowdown_mask: int | None


_N = TypeVar("_N", int, float)


def _one_gpu(lib: Any, handle: Any) -> dict[str, Any]:
    """``lib`` is the pynvml module (untyped); values are floats, or NVML's memory struct."""
    probes: dict[str, Callable[[], Any]] = {
        "util": lambda: float(lib.nvmlDeviceGetUtilizationRates(handle).gpu),
        "memory": lambda: lib.nvmlDeviceGetMemoryInfo(handle),
        "power": lambda: lib.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        "temperature": lambda: float(lib.nvmlDeviceGetTemperature(handle, lib.NVML_TEMPERATURE_GPU)),
        "clock": lambda: float(lib.nvmlDeviceGetClockInfo(handle, lib.NVML_CLOCK_SM)),
    }
    out: dict[str, Any] = {}
    for name, probe in probes.items():
        try:
            out[name] = probe()
        except Exception:  # a field unsupported on this GPU (e.g. power on some boards)
            out[name] = None
    return out


def _every(values: Sequence[_N | None]) -> list[_N] | None:
    """The values when every GPU gave one (``None`` when any did not, or there are none)."""
    present = [v for v in values if v is not None]
    return present if present and len(present) == len(values) else None


def _mean_of(values: Sequence[float | None]) -> float | None:
    present = _every(values)
    return None if present is None else sum(present) / len(present)


def _combine(values: Sequence[_N | None], how: str) -> _N | None:
    """``sum``, ``max`` or ``min`` over the GPUs, ``None`` unless every GPU gave a value."""
    present = _every(values)
    if present is None:
        return None
    return {"sum": sum(present), "max": max(present), "min": min(present)}[how]


def gpu_fields(uuids: Sequence[str]) -> GpuFields:
    """The GPU part of a sample over ``uuids`` (empty when NVML cannot see them)."""
    lib = _nvml.nvml()
    if lib is None or not uuids:
        return {}
    rows: list[dict[str, Any]] = []
    pid = os.getpid()
    for uuid in uuids:
        handle = _nvml.handle(uuid)
        if handle is None:
            return {}
        row = _one_gpu(lib, handle)
        procs = _nvml.compute_processes(uuid)
        row["mine"] = None if procs is None else sum(p.used_bytes or 0 for p in procs if p.pid == pid)
        row["others"] = None if procs is None else {p.pid for p in procs if p.pid != pid}
        row["slowdown"] = _nvml.slowdown_mask(uuid)
        rows.append(row)
    memory = [r["memory"] for r in rows]
    others = [r["others"] for r in rows]
    masks = [r["slowdown"] for r in rows]
    return {
        "gpu_util_percent": _mean_of([r["util"] for r in rows]),
        "gpu_memory_used_bytes": _combine([int(m.used) if m else None for m in memory], "sum"),
        "gpu_memory_total_bytes": _combine([int(m.total) if m else None for m in memory], "sum"),
        "power_w": _combine([r["power"] for r in rows], "sum"),
        "temperature_c": _combine([r["temperature"] for r in rows], "max"),
        "sm_clock_mhz": _combine([r["clock"] for r in rows], "min"),
        "process_memory_bytes": _combine([r["mine"] for r in rows], "sum"),
        "other_processes": None if any(o is None for o in others) else len(set[int]().union(*others)),
        "slowdown_mask": None if any(m is None for m in masks) else _or(masks),
    }


def _or(masks: Sequence[int]) -> int:
    out = 0
    for m in masks:
        out |= int(m)
    return out


class TelemetrySampler:
    """A daemon thread that samples at ``hz`` into a queue; use as a context manager
    and :meth:`drain` the samples from the consuming thread. ``hz=0`` starts no thread
    (a caller that polls :meth:`sample` itself, like the app's telemetry strip)."""

    def __init__(self, hz: float = 10.0, uuids: Sequence[str] = (), maxsize: int = 10_000) -> None:
        self.period = 1.0 / hz if hz > 0 else 0.0
        self.uuids = tuple(uuids)
        self.samples: queue.Queue[TelemetrySample] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ctxscope-telemetry")
        self._proc = psutil.Process()

    def __enter__(self) -> TelemetrySampler:
        if self.period > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def set_uuids(self, uuids: Sequence[str]) -> None:
        """Follow other GPUs (the app's device selection)."""
        self.uuids = tuple(uuids)

    def sample(self) -> TelemetrySample:
        """Take one reading now."""
        return TelemetrySample(t=time.perf_counter(), cpu_percent=float(psutil.cpu_percent(interval=None)),
                               rss_bytes=int(self._proc.memory_info().rss), **gpu_fields(self.uuids))

    def _run(self) -> None:
        psutil.cpu_percent(interval=None)  # prime: the first call always returns 0.0
        while not self._stop.wait(self.period):
            try:
                self.samples.put_nowait(self.sample())
            except queue.Full:  # nobody is draining; drop rather than grow without bound
                pass

    def drain(self) -> list[TelemetrySample]:
        """All samples taken since the last drain, oldest first."""
        out: list[TelemetrySample] = []
        while True:
            try:
                out.append(self.samples.get_nowait())
            except queue.Empty:
                return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(samples: list[TelemetrySample], window: Window | None = None) -> TelemetrySummary | None:
    """What the hardware did while a point was timed: means and extremes of the samples
    inside ``window`` (all samples without one), the other processes' CPU use and the
    GPU energy over the window, who else held the GPU. ``None`` when there is neither a
    window nor a sample. Units are in the names."""
    inside = [s for s in samples if window is None or window.contains(s.t)]
    if not inside and window is None:
        return None

    def present(name: str) -> list[float]:
        return [float(v) for s in inside if (v := getattr(s, name)) is not None]

    util, power, temp, clock = (present(n) for n in ("gpu_util_percent", "power_w", "temperature_c", "sm_clock_mhz"))
    used, mine, others = present("gpu_memory_used_bytes"), present("process_memory_bytes"), present("other_processes")
    masks = [int(s.slowdown_mask) for s in inside if s.slowdown_mask is not None]
    if window is not None:
        for reading in (window.start, window.end):
            if reading.other_gpu_pids is not None:
                others.append(float(len(reading.other_gpu_pids)))
            if reading.slowdown_mask is not None:
                masks.append(int(reading.slowdown_mask))
    return {
        "samples": len(inside),
        "window_s": round(window.seconds if window is not None else inside[-1].t - inside[0].t, 3),
        "cpu_percent_mean": _mean([s.cpu_percent for s in inside]),
        "rss_max_bytes": max((s.rss_bytes for s in inside), default=None),
        "cpu_other_cores": None if window is None else window.cpu_other_cores(),
        "gpu_util_mean_percent": _mean(util),
        "gpu_util_max_percent": max(util) if util else None,
        "gpu_memory_used_max_bytes": int(max(used)) if used else None,
        "gpu_process_memory_max_bytes": int(max(mine)) if mine else None,
        "gpu_other_processes": int(max(others)) if others else None,
        "gpu_slowdown_mask": _or(masks) if masks else None,
        "power_mean_w": _mean(power),
        "power_max_w": max(power) if power else None,
        "energy_j": None if window is None else window.energy_j(),
        "temperature_max_c": max(temp) if temp else None,
        "sm_clock_mean_mhz": _mean(clock),
        "sm_clock_min_mhz": min(clock) if clock else None,
    }
