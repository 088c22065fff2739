"""Where a pass's memory went, from raw facts: one pure function, no torch.

The facts are what the allocator (GPU) or the kernel (CPU: RSS) reports around one pass,
plus the KV bytes the cache holds before and after it (each storage counted once). The
split follows from them::

    peak = allocated_before + new KV + activations
    allocated_before = weights + KV held before the pass + other

*other* is whatever was allocated before the pass besides the weights and the cache:
inputs, library workspaces (cuBLAS), stray tensors — or, on CPU, the process itself
(Python, libraries). Earlier versions counted from zero, so all of it landed in
"activations", and with weights offloaded to the CPU "activations" could go negative.
What does not add up is flagged, not clamped silently.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemorySplit:
    """Bytes of one pass. ``weights + kv_cache + activations + other`` equals the peak
    whenever ``notes`` is empty."""

    weights: int
    kv_cache: int
    activations: int
    other: int
    notes: tuple[str, ...] = ()


def split_memory(*, weights: int, allocated_before: int, peak: int, kv_before: int, kv_after: int,
                 reserved_peak: int | None = None) -> MemorySplit:
    """Split a pass's peak into weights / KV cache / activations / other.

    Parameters
    ----------
    weights
        Parameter + buffer bytes on the measured device(s).
    allocated_before
        Bytes allocated just before the pass (GPU: ``memory_allocated``; CPU: RSS).
    peak
        Peak during the pass, same counter (GPU: ``max_memory_allocated`` after a reset;
        CPU: the RSS high-water mark).
    kv_before, kv_after
        KV-cache storage held before the pass (a decode step starts with the cache of
        depth L; a prefill with none) and after it.
    reserved_peak
        The allocator's reserved peak, when known (checked against ``peak``).
    """
    notes: list[str] = []
    other = allocated_before - weights - kv_before
    if other < 0:
        notes.append(f"{-other} B of the weights or cache are not on the measured device "
                     "(offloaded or shared): they are not in its peak")
        other = 0
    new_kv = kv_after - kv_before
    activations = peak - allocated_before - max(0, new_kv)
    if activations < 0:
        # Where the allocator reuses memory freed during the pass (CPU pages already
        # mapped, a cache grown in place), the peak can be below before + new KV.
        notes.append(f"the peak is {-activations} B below what was allocated before plus the new KV cache: "
                     "memory freed or reused during the pass")
        activations = 0
    if reserved_peak is not None and reserved_peak < peak:
        notes.append("reserved peak below allocated peak: allocator statistics are inconsistent")
    return MemorySplit(weights=weights, kv_cache=kv_after, activations=activations, other=other, notes=tuple(notes))
