"""The profiled pass of one point: the same call the timed pass made, run under
``torch.profiler`` with a range around every classified module, then split.

It runs after the point's timed repetitions and memory pass and is never timed itself:
the profiler slows every op down (the ratio of its wall time to the timed median is
recorded as ``overhead``). It never runs inside another profiler: the CPU memory pass
(``core.cpu_alloc``) has finished before it starts — two profilers cannot nest.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ctxscope.core.blocks import BreakdownBlock
from ctxscope.core.breakdown import COMPONENTS
from ctxscope.core.breakdown.attribute import attribute, median_split
from ctxscope.core.breakdown.roles import ROOT, module_ranges
from ctxscope.core.model.compat import cache_kwargs
from ctxscope.core.measure.rollback import CacheRollback

if TYPE_CHECKING:
    from ctxscope.core.measure.measurer import Measurer

#: Profiled calls per point (decode: steps, each rolled back to depth L): the call of
#: median wall time is recorded, its components and its wall time.
PREFILL_CALLS = 3
DECODE_STEPS = 5


def _prefill_call(measurer: Measurer, length: int) -> tuple[Callable[[], Any], Callable[[], None] | None]:
    ids = measurer._ids(length)
    model = measurer.model
    if not measurer.loaded.info.is_decoder:
        return (lambda: model(input_ids=ids)), None
    if measurer.static:
        cache = measurer._static_cache(length)
        return (lambda: model(input_ids=ids, use_cache=True, **cache_kwargs(model, cache),
                              **measurer.head_kwargs)), cache.reset
    return (lambda: model(input_ids=ids, use_cache=True, **measurer.head_kwargs)), None


def _decode_call(measurer: Measurer, length: int) -> tuple[Callable[[], Any], Callable[[], None]]:
    """A cache at depth exactly ``length`` (built untimed, as the timed pass builds it)
    and one-token steps rolled back to it."""
    from transformers import DynamicCache

    from ctxscope.core.measure.measurer import SETTLE_STEPS

    model = measurer.model
    cache = measurer._static_cache(length) if measurer.static else DynamicCache(config=model.config)
    ids = measurer._ids(length)
    settle = min(SETTLE_STEPS, length - 1)
    model(input_ids=ids[:, :length - settle], use_cache=True, **cache_kwargs(model, cache), **measurer.head_kwargs)
    for i in range(length - settle, length):
        model(input_ids=ids[:, i:i + 1], use_cache=True, **cache_kwargs(model, cache), **measurer.head_kwargs)
    rollback = CacheRollback(cache)
    step_ids = measurer._ids(1, salt=7)
    return (lambda: model(input_ids=step_ids, use_cache=True, **cache_kwargs(model, cache),
                          **measurer.head_kwargs)), rollback


def profile_point(measurer: Measurer, mode: str, length: int, timed_median_ms: float) -> BreakdownBlock:
    """Profile ``mode`` at ``length`` (:data:`PREFILL_CALLS` calls, or :data:`DECODE_STEPS`
    decode steps) and split the time of the call of median wall time into components (ms).
    ``attributed_ms`` (their sum, the call's profiled range) is compared with ``total_ms``
    (that call's wall time): they differ by the profiler's bookkeeping around the range.
    Raises what the model raises (the caller
    records it as the block's ``error``)."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # kineto prints a line at every start and stop
    cuda = measurer.device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    calls = DECODE_STEPS if mode == "decode" else PREFILL_CALLS
    walls: list[float] = []
    with torch.inference_mode(), module_ranges(measurer.model) as roles:
        call, after = _decode_call(measurer, length) if mode == "decode" else _prefill_call(measurer, length)
        # One decode step with the hooks in place, unprofiled: first-call costs are not the
        # model's. A prefill's shape is warm from its timed passes (one more costs a call).
        if mode == "decode" and after is not None:
            call()
            after()
        with torch.profiler.profile(activities=activities, record_shapes=False, with_stack=False) as prof:
            for _ in range(calls):
                measurer.timer.sync()
                t0 = time.perf_counter()
                with torch.profiler.record_function(ROOT):
                    out = call()
                measurer.timer.sync()
                walls.append((time.perf_counter() - t0) * 1e3)
                del out
                if after is not None:
                    after()
        del call, after
    events = prof.events()
    splits = attribute(events, device=cuda)
    if len(splits) == len(walls):
        # The call of median wall time, whole: its components add up to its own range (a
        # per-component median would not add up on a busy machine, where a descheduled
        # thread now and then adds milliseconds to whichever op it hits).
        middle = sorted(range(len(walls)), key=walls.__getitem__)[len(walls) // 2]
        split, total = splits[middle], walls[middle]
    else:  # ranges lost (another profiler's events mixed in): medians, still a split
        split, total = median_split(splits), statistics.median(walls)
    components = {k: split[k] / 1e3 for k in COMPONENTS}  # µs → ms
    if cuda:
        # The device was idle for the rest of the wall time (launches, Python): "other".
        components["other"] += max(0.0, total - sum(components.values()))
    attributed = sum(components.values())
    return {"clock": "cuda" if cuda else "cpu", "calls": calls, "components_ms": components,
            "total_ms": total, "attributed_ms": attributed, "timed_median_ms": timed_median_ms,
            "overhead": total / timed_median_ms if timed_median_ms > 0 else None,
            "ranged_modules": len(roles), "error": None}
