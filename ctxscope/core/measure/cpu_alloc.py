"""The CPU allocator's peak during one pass, from the profiler's memory events.

On a GPU the caching allocator counts what tensors hold (``max_memory_allocated``). On a
CPU nothing does: the process's resident high-water mark moves with malloc arenas, thread
count and pages the kernel has not yet reclaimed (the same max-context search answered
2,304, 8,192 and 7,936 tokens in three runs on one machine), and a pass that reuses pages
already mapped shows no growth at all ("activations 0 B"). torch's CPU allocator reports
every allocation and free to the profiler when ``profile_memory`` is on; summing them in
order gives the peak of bytes held by tensors during the pass, above what was held when it
began — the same figure for the same pass, whatever else the machine does.

What it cannot see: memory a library takes without torch's allocator (oneDNN or BLAS
scratch space, Python objects). The process RSS is still recorded beside it.
"""

from __future__ import annotations

import os
from typing import Any

import torch


class CpuAllocatorPeak:
    """Context manager: ``peak`` (bytes above the start, never negative) and ``net`` (bytes
    still held at the end, above the start) after the block; both ``None`` where the
    profiler gave no memory events (unavailable, or already running in this process)."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self.net: int | None = None
        self._prof: Any = None

    def __enter__(self) -> CpuAllocatorPeak:
        # Kineto prints a line at every start and stop at its default level: on stderr,
        # between the CLI's table rows. 6 is above its highest level (USDT = 5).
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")
        try:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True,
                                          record_shapes=False, with_stack=False)
            prof.__enter__()  # type: ignore[no-untyped-call]  # unannotated in torch 2.13
        except Exception:  # noqa: BLE001 (a profiler already active, or none built in: no figure)
            self._prof = None
            return self
        self._prof = prof
        return self

    def __exit__(self, *exc: object) -> None:
        prof, self._prof = self._prof, None
        if prof is None:
            return
        try:
            prof.__exit__(None, None, None)
            self.peak, self.net = _peak_of(prof)
        except Exception:  # noqa: BLE001 (the figure is optional; the pass's own error must win)
            self.peak = self.net = None


def _peak_of(prof: Any) -> tuple[int | None, int | None]:
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        return None, None
    cpu = torch.autograd.DeviceType.CPU  # type: ignore[attr-defined]  # re-exported from torch._C
    # Sorted by time, stably: events of one instant keep the order they were recorded in.
    events = sorted(((e.start_ns(), e.nbytes()) for e in results.events()
                     if e.name() == "[memory]" and e.device_type() == cpu), key=lambda item: item[0])
    if not events:
        return None, None
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak, live
