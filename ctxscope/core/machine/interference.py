"""What else used the machine while a point was timed, and the energy the GPU used.

A tight spread is not evidence of a clean measurement: under a busy neighbour, CPU
points came out 10–40× slower with IQR/median ≤ 1.4% and nothing flagged them. So every
timed window records, from readings at its start and end and the telemetry samples
inside it: the CPU time other processes used (system-wide busy time, steal included,
minus this process's own), other processes holding the GPU, and clock slowdowns
(thermal, power brake, hardware). A point over a threshold is flagged *contended*.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from ctxscope.core.machine import nvml
from ctxscope.core.blocks import TelemetrySummary
from ctxscope.core.results import Point
from ctxscope.core.units import plural

#: Other processes' CPU use, in cores, above which a point is flagged contended.
CPU_OTHER_CORES = 0.5
#: Energy is reported only over windows at least this long: the NVML counter's update
#: interval makes shorter differences meaningless.
MIN_ENERGY_WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class Reading:
    """One instant: counters to difference, and who else is on the GPUs now."""

    t: float  # time.perf_counter()
    cpu_busy_s: float  # system-wide busy CPU seconds since boot
    self_cpu_s: float  # this process's user + system seconds
    energy_mj: int | None  # summed over the GPUs
    other_gpu_pids: frozenset[int] | None
    slowdown_mask: int | None


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    idle = getattr(times, "idle", 0.0) + getattr(times, "iowait", 0.0)
    # guest time is already inside user on Linux; steal (other VMs) counts as busy.
    total = sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "idle", "iowait", "irq",
                                                       "softirq", "steal"))
    return total - idle


def read(uuids: Sequence[str] = ()) -> Reading:
    """Take a reading now (a few hundred microseconds; outside any timed call)."""
    own = psutil.Process().cpu_times()
    energy: int | None = 0
    others: set[int] | None = set()
    mask: int | None = 0
    pid = os.getpid()
    for uuid in uuids:
        e = nvml.energy_mj(uuid)
        energy = None if e is None or energy is None else energy + e
        procs = nvml.compute_processes(uuid)
        others = None if procs is None or others is None else others | {p.pid for p in procs if p.pid != pid}
        m = nvml.slowdown_mask(uuid)
        mask = None if m is None or mask is None else mask | m
    if not uuids:
        energy = others = mask = None
    return Reading(t=time.perf_counter(), cpu_busy_s=_busy_seconds(), self_cpu_s=own.user + own.system,
                   energy_mj=energy, other_gpu_pids=None if others is None else frozenset(others),
                   slowdown_mask=mask)


@dataclass(frozen=True, slots=True)
class Window:
    """The span of a point's timed calls. ``cpu_start``, when given, starts the CPU
    accounting earlier (at the point's memory pass): the kernel counts CPU time in 10 ms
    ticks, too coarse for the few tens of milliseconds a short point's timing takes."""

    start: Reading
    end: Reading
    cpu_start: Reading | None = None

    @property
    def seconds(self) -> float:
        return max(0.0, self.end.t - self.start.t)

    def contains(self, t: float) -> bool:
        return self.start.t <= t <= self.end.t

    def cpu_other_cores(self) -> float | None:
        """Average cores other processes kept busy (from ``cpu_start`` when given)."""
        first = self.cpu_start or self.start
        seconds = self.end.t - first.t
        if seconds <= 0:
            return None
        others = (self.end.cpu_busy_s - first.cpu_busy_s) - (self.end.self_cpu_s - first.self_cpu_s)
        return max(0.0, others / seconds)

    def energy_j(self) -> float | None:
        """GPU energy over the window (J), only for windows of at least a second."""
        if self.seconds < MIN_ENERGY_WINDOW_S or self.start.energy_mj is None or self.end.energy_mj is None:
            return None
        return max(0, self.end.energy_mj - self.start.energy_mj) / 1000.0


def contention(summary: TelemetrySummary) -> str | None:
    """Why a point's timing is not clean, in one line; ``None`` when nothing crossed a
    threshold (``summary``: the point's telemetry summary)."""
    reasons = []
    cpu = summary.get("cpu_other_cores")
    if cpu is not None and cpu >= CPU_OTHER_CORES:
        reasons.append(f"other processes kept {cpu:.1f} CPU cores busy")
    gpu = summary.get("gpu_other_processes")
    if gpu:
        reasons.append(f"{int(gpu)} other process{'es' if gpu != 1 else ''} on the GPU")
    mask = int(summary.get("gpu_slowdown_mask") or 0) & nvml.FLAGGED_SLOWDOWNS
    if mask:
        reasons.append("GPU clocks slowed: " + ", ".join(nvml.slowdown_names(mask)))
    return "; ".join(reasons) + " while timed" if reasons else None


def contention_summary(points: Sequence[Point]) -> str | None:
    """One line for all the contended points of a run (``None``: none were): how many,
    and the range of what crossed a threshold. A per-point note repeated the same
    sentence on every row with only its figure changed."""
    contended = [p for p in points if p.contention]
    if not contended:
        return None
    summaries = [p.telemetry or {} for p in contended]
    reasons = []
    cpu = sorted(c for t in summaries if (c := t.get("cpu_other_cores")) is not None and c >= CPU_OTHER_CORES)
    if cpu:
        cores = f"{cpu[0]:.1f}" if f"{cpu[0]:.1f}" == f"{cpu[-1]:.1f}" else f"{cpu[0]:.1f}–{cpu[-1]:.1f}"
        reasons.append(f"other processes kept {cores} CPU cores busy")
    gpu = max((int(g) for t in summaries if (g := t.get("gpu_other_processes"))), default=0)
    if gpu:
        reasons.append(f"up to {gpu} other process{'es' if gpu != 1 else ''} on the GPU")
    mask = 0
    for t in summaries:
        mask |= int(t.get("gpu_slowdown_mask") or 0) & nvml.FLAGGED_SLOWDOWNS
    if mask:
        reasons.append("GPU clocks slowed: " + ", ".join(nvml.slowdown_names(mask)))
    said = "; ".join(reasons) + " while timed" if reasons else "; ".join(sorted({p.contention or "" for p in contended}))
    return f"{plural(len(contended), 'point')} of {len(points)} contended: {said}"


def isolation_problem(uuids: Sequence[str], *, cpu: bool, sample_s: float = 0.5) -> str | None:
    """Why a strictly isolated run must not start now, or ``None``: another process
    holds one of the GPUs (any context, busy or not: it can start work at any moment);
    for a CPU run, other processes keeping at least :data:`CPU_OTHER_CORES` busy over
    ``sample_s`` seconds."""
    pid = os.getpid()
    for uuid in uuids:
        procs = nvml.compute_processes(uuid)
        if procs is None:
            return f"NVML cannot list the processes on GPU {uuid}: isolation cannot be checked"
        others = sorted(p.pid for p in procs if p.pid != pid)
        if others:
            shown = ", ".join(map(str, others[:5])) + (" …" if len(others) > 5 else "")
            return f"{len(others)} other process{'es' if len(others) > 1 else ''} hold the GPU (pid {shown})"
    if cpu:
        start = read(())
        time.sleep(sample_s)
        busy = Window(start, read(())).cpu_other_cores()
        if busy is not None and busy >= CPU_OTHER_CORES:
            return f"other processes keep {busy:.1f} CPU cores busy"
    return None
