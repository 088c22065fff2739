"""Memory of one pass: allocator peaks on CUDA, RSS high-water on CPU, KV bytes held."""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any

import psutil
import torch

_CLEAR_REFS = "/proc/self/clear_refs"


def tensor_bytes(t: Any) -> int:
    return int(t.numel() * t.element_size()) if isinstance(t, torch.Tensor) else 0


def module_bytes(model: torch.nn.Module) -> int:
    """Parameter + buffer bytes (tied tensors once): the weights' footprint."""
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t)
    return total


def cache_bytes(cache: Any) -> int:
    """Bytes of the key/value tensors a transformers cache actually holds now.

    Sliding-window layers hold at most their window, so this can be less than the
    2·layers·kv_heads·head_dim·L·bytes of a full-attention cache.
    """
    if cache is None:
        return 0
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return sum(tensor_bytes(getattr(layer, "keys", None)) + tensor_bytes(getattr(layer, "values", None))
                   for layer in layers)
    if isinstance(cache, (tuple, list)):  # legacy tuple-of-tuples caches
        return sum(cache_bytes(item) if isinstance(item, (tuple, list)) else tensor_bytes(item) for item in cache)
    return 0


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


class PeakMemory:
    """Context manager around one pass; afterwards read ``peak_allocated``,
    ``peak_reserved`` (CUDA) or ``peak_rss`` and ``rss_before`` (CPU).

    With ``all_devices`` (a model spread over GPUs by a device map) the CUDA peaks are
    summed over every device, matching weights that are summed over every device.
    """

    def __init__(self, device: torch.device, *, all_devices: bool = False) -> None:
        self.device = device
        self.cuda_devices = list(range(torch.cuda.device_count())) if device.type == "cuda" and all_devices else \
            [device] if device.type == "cuda" else []
        self.peak_allocated: int | None = None
        self.peak_reserved: int | None = None
        self.peak_rss: int | None = None
        self.rss_before: int | None = None
        self._sampler: _RssSampler | None = None
        self._kernel_hwm = False

    def __enter__(self) -> PeakMemory:
        if self.cuda_devices:
            for dev in self.cuda_devices:
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
        else:
            self.rss_before = psutil.Process().memory_info().rss
            self._kernel_hwm = _reset_hwm()
            if not self._kernel_hwm:
                self._sampler = _RssSampler()
                self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda_devices:
            for dev in self.cuda_devices:
                torch.cuda.synchronize(dev)
            self.peak_allocated = sum(int(torch.cuda.max_memory_allocated(dev)) for dev in self.cuda_devices)
            self.peak_reserved = sum(int(torch.cuda.max_memory_reserved(dev)) for dev in self.cuda_devices)
            return
        rss_now = psutil.Process().memory_info().rss
        if self._sampler is not None:
            self._sampler.done.set()
            self._sampler.join()
            self.peak_rss = max(self._sampler.peak, rss_now)
        else:
            self.peak_rss = max(_read_hwm() or 0, rss_now)


def release(device: torch.device, *, collect: bool = False) -> None:
    """Return cached device memory. ``collect`` also runs the garbage collector, needed
    after a failure (an exception's traceback frames hold tensors); on the normal path
    tensors are freed by reference counting and a collection would only cost time."""
    if collect:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


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
