"""Find the longest context that runs: start from the analytic prediction, bracket, then
bisect with real passes (each out-of-memory handled as data) to within a granularity."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctxscope.core.errors import BadInputError
from ctxscope.core.units import fmt_bytes, fmt_mib

if TYPE_CHECKING:
    from ctxscope.core.loading import LoadedModel

#: What a trial's peak is, by the ``measure`` code a trial carries.
MEASURES = {
    "reserved": "the GPU allocator's reserved peak during the pass",
    "model": "the model peak: weights + the CPU allocator's peak during the pass (repeatable)",
    "rss": "the process's resident-memory high-water (the CPU allocator's figure was unavailable)",
}


@dataclass(frozen=True, slots=True)
class Trial:
    length: int
    fits: bool
    status: str  # "ok", "oom" or "over budget"
    peak_bytes: int | None
    seconds: float
    measure: str = "reserved"  # a key of MEASURES: what peak_bytes is

    def line(self, number: int, budget_bytes: int | None) -> str:
        """'trial  3: L=8192  over budget  peak 1,000.4 MiB > 1,000.0 MiB  2.10 s' — MiB
        precision, and the comparison that decided it."""
        cmp = "" if self.peak_bytes is None or budget_bytes is None else (" > " if self.status == "over budget" else " ≤ ") + fmt_mib(budget_bytes)
        return (f"trial {number:2d}: L={self.length:<8d} {self.status:12s} peak {fmt_mib(self.peak_bytes):>13s}"
                f"{cmp}  {self.seconds:6.2f} s")


@dataclass(frozen=True, slots=True)
class MaxContext:
    mode: str
    budget_bytes: int
    granularity: int
    predicted: int | None  # weights + KV alone fit up to here (an upper bound)
    largest_fit: int | None
    smallest_fail: int | None
    trials: tuple[Trial, ...]
    stopped_at_limit: bool = False

    def answer(self) -> str:
        """The answer in words (the CLI and the app say it the same way)."""
        if self.largest_fit is None:
            return "none: even the smallest trial did not fit"
        if self.stopped_at_limit:
            return f"{self.largest_fit:,} tokens (the model's maximum positions; nothing longer was tried)"
        return f"{self.largest_fit:,} tokens (fails at {self.smallest_fail:,}: within {self.granularity})"

    @property
    def measure(self) -> str:
        """What the budget was compared with, in words."""
        codes = [t.measure for t in self.trials if t.peak_bytes is not None]
        return MEASURES.get(codes[-1] if codes else "reserved", codes[-1] if codes else "")

    def summary(self) -> str:
        """One sentence: the mode, the budget, the answer, the analytic bound, the trials,
        and what the budget was compared with."""
        bound = (f"; analytic upper bound (weights + KV cache + state only, activations ignored) {self.predicted:,} "
                 "tokens" if self.predicted else "")
        # The MiB figure only where the short one rounds (1.0 GiB may be 1,020 MiB).
        shown = fmt_bytes(self.budget_bytes)
        exact = "" if _reads_back(shown, self.budget_bytes) else f" ({fmt_mib(self.budget_bytes)})"
        return (f"longest {self.mode} that runs within {fmt_bytes(self.budget_bytes)}{exact}: "
                f"{self.answer()}{bound}; {len(self.trials)} trial{'s' if len(self.trials) != 1 else ''}; "
                f"the budget was compared with {self.measure}")


def _reads_back(text: str, value: int) -> bool:
    from ctxscope.core.units import parse_size

    try:
        return parse_size(text.replace(" ", ""), "size") == value
    except BadInputError:
        return False


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


def trial_runner(loaded: LoadedModel, mode: str, budget_bytes: int, batch: int = 1,
                 cache: str = "dynamic") -> Callable[[int], Trial]:
    """A trial: one untimed pass at a length, exactly what the sweep runs there (a
    prefill that keeps its cache; for decode, that prefill and one step); fits when it
    neither runs out of memory nor peaks above the budget (GPU: the allocator's reserved
    peak; CPU: the model peak — the weights plus the CPU allocator's peak during the pass,
    the same for the same pass however busy the machine; the process's RSS high-water, which
    is not, only where the allocator's figure is unavailable). ``cache``: the KV-cache
    strategy the prefill fills (:mod:`ctxscope.core.kv_cache`), as the sweep's would."""
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
                kwargs: dict[str, Any] = {"use_cache": True, "logits_to_keep": 1} if loaded.info.is_decoder else {}
                if cache != "dynamic" and loaded.info.is_decoder:
                    from ctxscope.core.kv_cache import make_cache

                    kwargs.update(cache_kwargs(loaded.model, make_cache(cache, loaded.model.config, length=length)))
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
