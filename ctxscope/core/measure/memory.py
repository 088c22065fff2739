"""Memory of one pass: allocator peaks on CUDA (the model's devices only), on CPU the RSS
high-water and the CPU allocator's peak, and cleanup that never raises. What a cache holds
is counted in :mod:`ctxscope.core.measure.cache_storage`."""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import psutil
import torch

from ctxscope.core.machine import nvml
from ctxscope.core.measure.cpu_alloc import CpuAllocatorPeak

_CLEAR_REFS = "/proc/self/clear_refs"


def tensor_bytes(t: Any) -> int:
    return int(t.numel() * t.element_size()) if isinstance(t, torch.Tensor) else 0


def module_bytes(model: torch.nn.Module, device: torch.device | None = None) -> int:
    """Parameter + buffer bytes (tied tensors once): the weights' footprint; with
    ``device``, only those that live there (a device map spreads them)."""
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen and (device is None or _same_device(t.device, device)):
            seen.add(id(t))
            total += tensor_bytes(t)
    return total


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0) if a.type == "cuda" else a.type == b.type


def model_devices(model: torch.nn.Module) -> tuple[torch.device, ...]:
    """The CUDA devices holding any of the model's weights, in index order (one for a
    plain load, several under ``device_map="auto"``); empty off CUDA."""
    indices = {t.device.index or 0 for t in list(model.parameters()) + list(model.buffers()) if t.device.type == "cuda"}
    return tuple(torch.device("cuda", i) for i in sorted(indices))


def _read_hwm() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    """Linux lets a process reset its own RSS high-water mark (exact, no sampling)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open(_CLEAR_REFS, "w", encoding="ascii") as fh:
            fh.write("5")
        return _read_hwm() is not None
    except OSError:
        return False


class _RssSampler(threading.Thread):
    """Fallback RSS high-water where the kernel's cannot be reset: sample every 1 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="ctxscope-rss")
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.001):
            self.peak = max(self.peak, self.proc.memory_info().rss)


class _ProcessMemorySampler(threading.Thread):
    """This process's device memory per NVML (its CUDA context plus everything the
    allocator reserved), summed over the model's GPUs; the peak over the pass, sampled
    every millisecond — one reading after the pass would miss it."""

    def __init__(self, uuids: Sequence[str]) -> None:
        super().__init__(daemon=True, name="ctxscope-nvml-memory")
        self.uuids = tuple(uuids)
        self.pid = os.getpid()
        self.peak: int | None = None
        self.done = threading.Event()
        self.read()

    def read(self) -> None:
        total = 0
        for uuid in self.uuids:
            procs = nvml.compute_processes(uuid)
            if procs is None:
                return
            total += sum(p.used_bytes or 0 for p in procs if p.pid == self.pid)
        self.peak = total if self.peak is None else max(self.peak, total)

    def run(self) -> None:
        while not self.done.wait(0.001):
            self.read()


class PeakMemory:
    """Context manager around one pass. On CUDA (``devices``: the GPUs the model
    occupies) read afterwards ``allocated_before``, ``peak_allocated`` and
    ``peak_reserved``, summed over those devices only, and ``process_peak`` (NVML's
    view of this process, when available); on CPU ``rss_before`` and ``peak_rss``, and
    ``alloc_peak``: the bytes torch's CPU allocator handed out during the pass above what
    was held at its start (repeatable, unlike the RSS; ``None`` where unavailable).
    """

    def __init__(self, devices: torch.device | Sequence[torch.device], *, uuids: Sequence[str] = ()) -> None:
        if isinstance(devices, torch.device):
            devices = [devices] if devices.type == "cuda" else []
        self.cuda_devices = [d for d in devices if d.type == "cuda"]
        self.uuids = tuple(uuids)
        self.allocated_before: int | None = None
        self.peak_allocated: int | None = None
        self.peak_reserved: int | None = None
        self.process_peak: int | None = None
        self.peak_rss: int | None = None
        self.rss_before: int | None = None
        self.alloc_peak: int | None = None
        self._alloc: CpuAllocatorPeak | None = None
        self._sampler: _RssSampler | None = None
        self._nvml: _ProcessMemorySampler | None = None

    def __enter__(self) -> PeakMemory:
        if self.cuda_devices:
            for dev in self.cuda_devices:
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            self.allocated_before = sum(int(torch.cuda.memory_allocated(dev)) for dev in self.cuda_devices)
            if self.uuids and nvml.nvml() is not None:
                self._nvml = _ProcessMemorySampler(self.uuids)
                self._nvml.start()
        else:
            self.rss_before = psutil.Process().memory_info().rss
            if not _reset_hwm():
                self._sampler = _RssSampler()
                self._sampler.start()
            self._alloc = CpuAllocatorPeak().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda_devices:
            try:
                for dev in self.cuda_devices:
                    torch.cuda.synchronize(dev)
                self.peak_allocated = sum(int(torch.cuda.max_memory_allocated(dev)) for dev in self.cuda_devices)
                self.peak_reserved = sum(int(torch.cuda.max_memory_reserved(dev)) for dev in self.cuda_devices)
            finally:
                if self._nvml is not None:
                    self._nvml.done.set()
                    self._nvml.join()
                    self._nvml.read()
                    self.process_peak = self._nvml.peak
            return
        if self._alloc is not None:
            self._alloc.__exit__(*exc)
            self.alloc_peak = self._alloc.peak
        rss_now = psutil.Process().memory_info().rss
        if self._sampler is not None:
            self._sampler.done.set()
            self._sampler.join()
            self.peak_rss = max(self._sampler.peak, rss_now)
        else:
            self.peak_rss = max(_read_hwm() or 0, rss_now)


_CONTEXT_ERRORS = ("device-side assert", "illegal memory access", "unspecified launch failure",
                   "misaligned address", "illegal instruction", "an illegal", "cuda error")


def is_context_error(exc: BaseException) -> bool:
    """A CUDA error after which the process's CUDA context is unusable (a device-side
    assert, an illegal access): every later CUDA call fails the same way."""
    if isinstance(exc, torch.OutOfMemoryError):
        return False
    return any(marker in str(exc).lower() for marker in _CONTEXT_ERRORS)


def release(device: torch.device | Sequence[torch.device], *, collect: bool = False) -> str | None:
    """Return cached device memory. ``collect`` also runs the garbage collector, needed
    after a failure (an exception's traceback frames hold tensors); on the normal path
    tensors are freed by reference counting and a collection would only cost time.

    Never raises: cleanup runs in ``finally`` blocks, where a second exception would
    replace the first. A CUDA failure here (a poisoned context) is returned as text."""
    if collect:
        gc.collect()
    devices = [device] if isinstance(device, torch.device) else list(device)
    try:
        for dev in devices:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
        if any(dev.type == "cuda" for dev in devices):
            torch.cuda.empty_cache()
        elif any(dev.type == "mps" for dev in devices):
            torch.mps.empty_cache()
    except Exception as exc:  # noqa: BLE001 (see the docstring)
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


def is_oom(exc: BaseException) -> bool:
    """Out-of-memory on any device: CUDA raises ``OutOfMemoryError``; the CPU allocator
    and MPS raise a ``RuntimeError`` that says so."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError))


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """A failed pass as data: (``"oom"``, "out of memory: …") or (``"error"``, "Type: …")."""
    text = str(exc).strip()
    if is_oom(exc):
        return "oom", "out of memory: " + text.splitlines()[0][:300] if text else "out of memory"
    return "error", f"{type(exc).__name__}: {text[:500]}"
