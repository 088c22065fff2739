"""``--cache offload``'s two GPU figures, counted from what the cache really moves and holds:
host↔device traffic (bytes each layer's ``prefetch`` brings to the device and ``offload``
sends back, per decode step) and the device memory the strategy frees (the cache's storage
that sits in host memory instead of on the device).

transformers' offloaded caches move a layer's ``keys`` / ``values`` with ``.to(device)``
inside ``prefetch`` / ``offload``: :class:`TrafficMeter` wraps those two methods on each
layer and adds up the tensors whose device changed. GPU only in practice (refused on CPU),
so this is tested with fake layers on CPU; tests/gpu/test_gpu_kv.py checks it on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ctxscope.core.results import MemoryStats

_MOVED = ("keys", "values")


@dataclass(frozen=True, slots=True)
class Traffic:
    """Bytes moved while a :class:`TrafficMeter` was active."""

    to_device: int = 0
    to_host: int = 0

    @property
    def total(self) -> int:
        return self.to_device + self.to_host


def _nbytes(t: Any) -> int:
    return int(t.numel() * t.element_size())


def _device_type(t: Any) -> str:
    return str(getattr(getattr(t, "device", None), "type", getattr(t, "device", "")))


class TrafficMeter:
    """Counts what a cache's layers move between host and device while active::

        with TrafficMeter(cache) as meter:
            model(input_ids=step, cache=cache)
        meter.traffic.to_device  # bytes brought to the GPU for that step
    """

    def __init__(self, cache: Any) -> None:
        self.layers = list(getattr(cache, "layers", None) or ())
        self.to_device = 0
        self.to_host = 0
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, layer: Any, name: str) -> None:
        original = getattr(layer, name, None)
        if original is None:
            return

        def moved(*args: Any, **kwargs: Any) -> Any:
            before = {n: _device_type(getattr(layer, n, None)) for n in _MOVED}
            out = original(*args, **kwargs)
            for n in _MOVED:
                t = getattr(layer, n, None)
                if t is None or _device_type(t) == before[n]:
                    continue
                if _device_type(t) == "cpu":
                    self.to_host += _nbytes(t)
                else:
                    self.to_device += _nbytes(t)
            return out

        self._saved.append((layer, name, layer.__dict__.get(name)))
        setattr(layer, name, moved)

    def __enter__(self) -> TrafficMeter:
        for layer in self.layers:
            self._wrap(layer, "prefetch")
            self._wrap(layer, "offload")
        return self

    def __exit__(self, *exc: object) -> None:
        for layer, name, own in reversed(self._saved):
            if own is None:
                delattr(layer, name)  # the class's method shows through again
            else:
                setattr(layer, name, own)
        self._saved.clear()

    @property
    def traffic(self) -> Traffic:
        return Traffic(self.to_device, self.to_host)


def bytes_by_device(cache: Any) -> dict[str, int]:
    """KV storage bytes per device type (``{"cpu": …, "cuda": …}``), each storage once:
    what offloading keeps off the device is the ``cpu`` share."""
    seen: set[tuple[str, int]] = set()
    out: dict[str, int] = {}
    for layer in getattr(cache, "layers", None) or ():
        for n in _MOVED:
            t = getattr(layer, n, None)
            if t is None or not hasattr(t, "untyped_storage"):
                continue
            storage = t.untyped_storage()
            key = (str(t.device), storage.data_ptr())
            if key in seen:
                continue
            seen.add(key)
            out[t.device.type] = out.get(t.device.type, 0) + int(storage.nbytes())
    return out


def host_bytes(cache: Any) -> int:
    """KV storage bytes a cache keeps in host memory (what offloading keeps off the device)."""
    return bytes_by_device(cache).get("cpu", 0)


def metered_step(cache: Any, step: Callable[[], Any]) -> Traffic:
    """Run ``step`` once (untimed) and return what it moved between host and device."""
    with TrafficMeter(cache) as meter:
        out = step()
        del out
    return meter.traffic


def offloaded(memory: MemoryStats, host: int, traffic: int | None) -> MemoryStats:
    """``memory`` as the split measured it with the cache's *device* share only (the host
    share is not in the device's peak), given back the whole cache: ``kv_cache_bytes``
    counts every byte the cache holds (so bytes per token compare with other strategies),
    ``kv_host_bytes`` the host share, ``kv_traffic_bytes`` one decode step's traffic."""
    note = (f"KV cache: {host:,} B of it in host memory (--cache offload), not in the device's peak; "
            "layers brought to the device for a step count as activations")
    notes = "; ".join(n for n in (memory.accounting_note, note) if n)
    return replace(memory, kv_cache_bytes=memory.kv_cache_bytes + host, kv_host_bytes=host,
                   kv_traffic_bytes=traffic, accounting_note=notes)
