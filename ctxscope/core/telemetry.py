"""Background telemetry: NVML (utilisation, memory, power, temperature, SM clock) and
psutil (CPU %, RSS) at about 10 Hz. Degrades silently to psutil-only without NVIDIA."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import psutil

from ctxscope.core import nvml as _nvml


@dataclass(frozen=True, slots=True)
class TelemetrySample:
    """One reading. ``t`` is seconds since the sampler started; GPU fields may be ``None``."""

    t: float
    cpu_percent: float
    rss_bytes: int
    gpu_util_percent: float | None = None
    gpu_memory_used_bytes: int | None = None
    gpu_memory_total_bytes: int | None = None
    power_w: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: float | None = None


def _gpu_fields(lib: object, handle: object) -> dict[str, float | int | None]:
    out: dict[str, float | int | None] = {}
    probes = {
        "gpu_util_percent": lambda: float(lib.nvmlDeviceGetUtilizationRates(handle).gpu),
        "gpu_memory_used_bytes": lambda: int(lib.nvmlDeviceGetMemoryInfo(handle).used),
        "gpu_memory_total_bytes": lambda: int(lib.nvmlDeviceGetMemoryInfo(handle).total),
        "power_w": lambda: lib.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        "temperature_c": lambda: float(lib.nvmlDeviceGetTemperature(handle, lib.NVML_TEMPERATURE_GPU)),
        "sm_clock_mhz": lambda: float(lib.nvmlDeviceGetClockInfo(handle, lib.NVML_CLOCK_SM)),
    }
    for name, probe in probes.items():
        try:
            out[name] = probe()
        except Exception:  # a field unsupported on this GPU (e.g. power on some boards)
            out[name] = None
    return out


class TelemetrySampler:
    """A daemon thread that samples at ``hz`` into a queue; use as a context manager
    and :meth:`drain` the samples from the consuming thread."""

    def __init__(self, hz: float = 10.0, device_index: int | None = None, maxsize: int = 10_000) -> None:
        self.period = 1.0 / hz if hz > 0 else 0.0
        self.device_index = device_index
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

    def sample(self, t: float) -> TelemetrySample:
        """Take one reading now."""
        gpu: dict[str, float | int | None] = {}
        if self.device_index is not None:
            lib, handle = _nvml.nvml(), _nvml.handle_for(self.device_index)
            if lib is not None and handle is not None:
                gpu = _gpu_fields(lib, handle)
        return TelemetrySample(t=t, cpu_percent=float(psutil.cpu_percent(interval=None)),
                               rss_bytes=int(self._proc.memory_info().rss), **gpu)

    def _run(self) -> None:
        t0 = time.perf_counter()
        psutil.cpu_percent(interval=None)  # prime: the first call always returns 0.0
        while not self._stop.wait(self.period):
            try:
                self.samples.put_nowait(self.sample(time.perf_counter() - t0))
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


def summarize(samples: list[TelemetrySample]) -> dict[str, float | int | None] | None:
    """What the hardware did during a point: means and extremes of the samples taken
    while it ran (``None`` when no sample fell inside it, e.g. a point shorter than the
    sampling period). Units are in the names."""
    if not samples:
        return None

    def present(name: str) -> list[float]:
        return [float(v) for s in samples if (v := getattr(s, name)) is not None]

    util, power, temp, clock = (present(n) for n in ("gpu_util_percent", "power_w", "temperature_c", "sm_clock_mhz"))
    used = present("gpu_memory_used_bytes")
    return {
        "samples": len(samples),
        "window_s": round(samples[-1].t - samples[0].t, 3),
        "cpu_percent_mean": _mean([s.cpu_percent for s in samples]),
        "rss_max_bytes": max(s.rss_bytes for s in samples),
        "gpu_util_mean_percent": _mean(util),
        "gpu_util_max_percent": max(util) if util else None,
        "gpu_memory_used_max_bytes": int(max(used)) if used else None,
        "power_mean_w": _mean(power),
        "power_max_w": max(power) if power else None,
        "temperature_max_c": max(temp) if temp else None,
        "sm_clock_mean_mhz": _mean(clock),
        "sm_clock_min_mhz": min(clock) if clock else None,
    }
