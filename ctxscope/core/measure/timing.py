"""Timing one model call: CUDA events on GPU, ``perf_counter`` on CPU, and the
repetition policy that decides how many timed calls a point gets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ctxscope.core.stats import rel_iqr


class Cancelled(Exception):
    """Raised inside the sweep when the stop event is set; never reaches the user."""


@dataclass(frozen=True, slots=True)
class RepeatPolicy:
    """Repeat until IQR/median ≤ ``target_rel_iqr`` (after ``min_repeats``), the
    ``budget_s`` wall-clock budget is spent, or ``max_repeats`` samples are taken."""

    min_repeats: int = 5
    max_repeats: int = 100
    budget_s: float = 2.0
    target_rel_iqr: float = 0.05


class CallTimer:
    """Times a callable, one sample per call, in milliseconds.

    On one CUDA device: events recorded on the current stream around the call only,
    read after ``end.synchronize()``. The stream is drained before each call, so a
    sample is the latency of a call started from an idle device (launch overhead
    included), as in a generate loop that reads each token. With a model spread over
    several GPUs (``devices``: those it occupies, not every visible one) it falls back
    to ``perf_counter`` between synchronisations of those devices.
    """

    def __init__(self, device: torch.device, *, devices: tuple[torch.device, ...] = ()) -> None:
        self.device = device
        self.devices = tuple(d for d in devices if d.type == "cuda")
        self.multi_device = len(self.devices) > 1
        self.uses_events = device.type == "cuda" and not self.multi_device

    @property
    def name(self) -> str:
        if self.uses_events:
            return "cuda_event"
        return "perf_counter+sync" if self.multi_device or self.device.type != "cpu" else "perf_counter"

    def sync(self) -> None:
        if self.multi_device:
            for dev in self.devices:
                torch.cuda.synchronize(dev)
        elif self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def time(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        """Run ``fn`` once; return (milliseconds, its result)."""
        self.sync()
        if self.uses_events:
            with torch.cuda.device(self.device):
                # torch.cuda.Event.__new__ is unannotated (torch 2.13): mypy sees an untyped call.
                start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                start.record()
                out = fn()
                end.record()
                end.synchronize()
            return float(start.elapsed_time(end)), out
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return (time.perf_counter() - t0) * 1e3, out


def repeat_timed(
    timer: CallTimer,
    call: Callable[[], Any],
    policy: RepeatPolicy,
    *,
    after: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
    keep_last: bool = False,
) -> tuple[list[float], Any]:
    """Time ``call`` repeatedly under ``policy``; ``after`` runs untimed after each call
    (e.g. cropping the KV cache). Returns (samples in ms, the last call's output if
    ``keep_last`` else ``None``). Every other output is released before the next call,
    so no call runs with a previous call's tensors still held.

    Raises :class:`Cancelled` when ``stop`` is set between calls.
    """
    samples: list[float] = []
    last: Any = None
    t_start = time.perf_counter()
    while True:
        if stop is not None and stop.is_set():
            raise Cancelled
        ms, out = timer.time(call)
        samples.append(ms)
        n = len(samples)
        done = n >= policy.max_repeats or (n >= policy.min_repeats and (
            time.perf_counter() - t_start >= policy.budget_s or rel_iqr(samples) <= policy.target_rel_iqr))
        if done and keep_last:
            last = out
        del out
        if after is not None:
            after()
        if done:
            return samples, last
