"""Find the longest context that runs: start from the analytic prediction, bracket, then
bisect with real passes (each out-of-memory handled as data) to within a granularity."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from ctxscope.core.errors import BadInputError
# The search's records are plain data with the rest of the event vocabulary; named here too.
from ctxscope.core.events import MEASURES as MEASURES
from ctxscope.core.events import MaxContext as MaxContext
from ctxscope.core.events import Trial as Trial

if TYPE_CHECKING:
    from ctxscope.core.loading import LoadedModel

def search(trial: Callable[[int], Trial], *, start: int, granularity: int, limit: int,
           stop: threading.Event | None = None) -> Generator[Trial, None, tuple[int | None, int | None, bool]]:
    """Bracket and bisect over multiples of ``granularity`` up to ``limit``; yields each
    trial; returns (largest length that fits, smallest that failed, hit the limit)."""
    if granularity < 1:
        raise BadInputError(f"granularity must be at least 1, not {granularity}")

    def snap(n: int) -> int:
        return max(granularity, min(limit, n // granularity * granularity))

    ok: int | None = None
    bad: int | None = None
    n = snap(start)
    while True:  # bracket: go up from a fit, down from a failure
        if stop is not None and stop.is_set():
            return ok, bad, False
        p = trial(n)
        yield p
        if p.fits:
            ok = n
            if n >= limit:
                return ok, bad, True
            if bad is not None:
                break
            n = snap(n * 2)
        else:
            bad = n
            if n <= granularity:
                return ok, bad, False
            if ok is not None:
                break
            n = snap(n // 2)
    while bad - ok > granularity:  # bisect
        if stop is not None and stop.is_set():
            break
        mid = snap((ok + bad) // 2)
        if mid in (ok, bad):
            break
        p = trial(mid)
        yield p
        if p.fits:
            ok = mid
        else:
            bad = mid
    return ok, bad, False


def calibrated_start(trial: Callable[[int], Trial], *, granularity: int, predicted: int | None, budget_bytes: int,
                     limit: int) -> Generator[Trial, None, int]:
    """Two small trials measure how the peak grows per token; the search starts at the
    smaller of that extrapolation and the analytic bound (which ignores activations and,
    for a small model, can be millions of tokens: an O(L²) pass there never ends)."""
    first = min(limit, 4 * granularity)
    p1 = trial(first)
    yield p1
    if not p1.fits or p1.peak_bytes is None:
        return first
    second = min(limit, 2 * first)
    if second == first:
        return first
    p2 = trial(second)
    yield p2
    if not p2.fits or p2.peak_bytes is None:
        return second
    slope = max(1.0, (p2.peak_bytes - p1.peak_bytes) / (second - first))
    extrapolated = int(second + (budget_bytes - p2.peak_bytes) / slope)
    return max(granularity, min(limit, extrapolated, predicted or limit))


def trial_runner(loaded: LoadedModel, mode: str, budget_bytes: int, batch: int = 1) -> Callable[[int], Trial]:
    """A trial: one untimed pass at a length, exactly what the sweep runs there (a
    prefill that keeps its cache; for decode, that prefill and one step); fits when it
    neither runs out of memory nor peaks above the budget (GPU: the allocator's reserved
    peak; CPU: the model peak — the weights plus the CPU allocator's peak during the pass,
    the same for the same pass however busy the machine; the process's RSS high-water, which
    is not, only where the allocator's figure is unavailable)."""
    import torch

    from ctxscope.core.compat import cache_kwargs, output_cache
    from ctxscope.core.inputs import random_token_ids
    from ctxscope.core.errors import CONTEXT_LOST, DeviceError
    from ctxscope.core.measure import warm_process
    from ctxscope.core.memory import PeakMemory, is_context_error, is_oom, model_devices, module_bytes, release

    warm_process(loaded)  # one-off first-call allocations must not count against the budget
    devices = model_devices(loaded.model) if loaded.device.type == "cuda" else ()
    weights = module_bytes(loaded.model)

    def run(length: int) -> Trial:
        t0 = time.perf_counter()
        status, peak, measure = "ok", None, "reserved"
        try:
            ids = random_token_ids(length, batch, loaded.info.vocab_size, seed=0).to(loaded.device)
            with torch.inference_mode(), PeakMemory(devices or loaded.device) as mem:
                # Exactly what the sweep runs: its prefill keeps the cache (the KV cache is
                # part of the peak), as does the untimed prefill before decode steps.
                kwargs = {"use_cache": True, "logits_to_keep": 1} if loaded.info.is_decoder else {}
                out = loaded.model(input_ids=ids, **kwargs)
                if mode == "decode":
                    step = loaded.model(input_ids=ids[:, -1:], use_cache=True, logits_to_keep=1,
                                        **cache_kwargs(loaded.model, output_cache(out)))
                    del step
                del out
            # On a GPU the reserved peak: what the allocator took from the device (the
            # allocated peak plus fragmentation) is what a memory fraction limits.
            if mem.peak_reserved is not None:
                peak = mem.peak_reserved
            elif mem.alloc_peak is not None:
                peak, measure = weights + mem.alloc_peak, "model"
            else:
                peak, measure = mem.peak_rss, "rss"
        except Exception as exc:
            if is_context_error(exc):
                raise DeviceError(CONTEXT_LOST) from None
            if not is_oom(exc):
                raise
            status = "oom"
        if release(devices or loaded.device, collect=status == "oom") is not None and loaded.device.type == "cuda":
            raise DeviceError(CONTEXT_LOST)
        if status == "ok" and peak is not None and peak > budget_bytes:
            status = "over budget"
        return Trial(length=length, fits=status == "ok", status=status, peak_bytes=peak,
                     seconds=time.perf_counter() - t0, measure=measure)

    return run
