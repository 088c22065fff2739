"""The whole max-context search on a loaded model, shared by ``ctxscope maxctx`` and the
desktop app's "Find max context": budget (enforced on GPU with the allocator's memory
fraction), the analytic upper bound, calibration, bracket and bisect."""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ctxscope.core.errors import BadInputError
from ctxscope.core.model.modelinfo import modes_of
from ctxscope.core.maxctx.search import MaxContext, Trial, calibrated_start, trial_runner, search
from ctxscope.core.units import fmt_bytes

if TYPE_CHECKING:
    from ctxscope.core.model.loading import LoadedModel


def predicted_max(loaded: LoadedModel, budget: int, dtype: str, batch: int, limit: int,
                  cache: str = "dynamic") -> int | None:
    """Largest L whose weights + KV cache (of strategy ``cache``) + recurrent state fit
    the budget (activations ignored: an upper bound)."""
    from ctxscope.core.predict import analytic
    from ctxscope.core.predict.kv_analytic import strategy_kv_bytes

    arch = analytic.describe_config(loaded.config)
    weights = analytic.weights_bytes(arch, dtype) + analytic.state_bytes(arch, dtype, batch)  # state: fixed in L
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if weights + strategy_kv_bytes(arch, mid, dtype, cache, batch=batch) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo or None


def _fraction(torch: Any, device: Any) -> float:
    getter = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch ≥ 2.8
    try:
        return float(getter(device)) if getter is not None else 1.0
    except Exception:
        return 1.0


def find_max_context(loaded: LoadedModel, *, mode: str | None = None, budget: int | None = None, granularity: int = 256,
                     batch: int = 1, allow_beyond_max: bool = False,
                     stop: threading.Event | None = None, cache: str = "dynamic") -> Generator[Trial, None, MaxContext]:
    """Yield every trial as it finishes; return the answer.

    ``budget`` (bytes) defaults on a GPU to what this process can use: the driver's free
    memory plus what PyTorch has already reserved (the weights and its cache), capped by
    any per-process memory fraction already set. A smaller budget is enforced with a
    memory fraction for the search and the user's own fraction restored after it. On CPU
    a budget is required; it is compared with the measured peak. ``cache``: the KV-cache
    strategy every trial's prefill fills (refused as a sweep refuses it).
    """
    import torch

    from ctxscope.core.machine.devices import dtype_name
    from ctxscope.core.measure.memory import module_bytes

    if granularity < 1:
        raise BadInputError(f"granularity must be at least 1, not {granularity}")
    if batch < 1:
        raise BadInputError(f"batch must be at least 1, not {batch}")
    mode = mode or modes_of(loaded.info)[0]
    if mode not in modes_of(loaded.info):
        raise BadInputError(f"mode {mode!r} does not apply to {loaded.info.source} "
                            f"(modes: {', '.join(modes_of(loaded.info))})")
    if cache != "dynamic":
        from ctxscope.core.measure.kv_cache import check_strategy

        check_strategy(cache, loaded.config, loaded.device.type, is_decoder=loaded.info.is_decoder)
    weights = module_bytes(loaded.model)
    previous_fraction: float | None = None
    if loaded.device.type == "cuda":
        free, total = torch.cuda.mem_get_info(loaded.device)
        # What this process can still use: the driver's free memory plus everything
        # PyTorch already reserved (the weights' blocks and its cache).
        usable = free + torch.cuda.memory_reserved(loaded.device)
        current = _fraction(torch, loaded.device)
        usable = min(usable, int(current * total))  # a limit the user set already applies
        if budget is None:
            budget = usable
        elif budget < usable:
            previous_fraction = current
            torch.cuda.set_per_process_memory_fraction(budget / total, loaded.device)  # enforce the smaller budget
    elif budget is None:
        raise BadInputError("on CPU give a memory budget (e.g. 8GiB): it is enforced on the measured peak")
    try:
        if budget <= weights:
            raise BadInputError(f"the budget ({fmt_bytes(budget)}) is smaller than the weights ({fmt_bytes(weights)})")
        hard = loaded.info.position_limit  # a learned table: nothing beyond it can run, even when asked
        limit = hard or (1 << 22 if allow_beyond_max or not loaded.info.max_positions else loaded.info.max_positions)
        predicted = predicted_max(loaded, budget, dtype_name(loaded.dtype), batch, limit, cache)
        trials: list[Trial] = []
        measure = trial_runner(loaded, mode, budget, batch, cache)
        known: dict[int, Trial] = {}

        def runner(length: int) -> Trial:
            # The calibration and the search may ask for the same length (a model whose
            # maximum is the first calibration length): one pass answers both.
            if length not in known:
                known[length] = measure(length)
            return known[length]

        def collect(gen: Generator[Trial, None, Any]) -> Generator[Trial, None, Any]:
            while True:
                try:
                    p = next(gen)
                except StopIteration as done:
                    return done.value
                if any(p is q for q in trials):
                    continue  # a repeated answer, not a new trial
                trials.append(p)
                yield p

        start = yield from collect(calibrated_start(runner, granularity=granularity, predicted=predicted,
                                                    budget_bytes=budget, limit=limit))
        ok, bad, at_limit = yield from collect(search(runner, start=start, granularity=granularity, limit=limit,
                                                      stop=stop))
    finally:
        if previous_fraction is not None:  # the user's own setting, not 1.0
            torch.cuda.set_per_process_memory_fraction(previous_fraction, loaded.device)
    return MaxContext(mode=mode, budget_bytes=budget, granularity=granularity, predicted=predicted,
                      largest_fit=ok, smallest_fail=bad, trials=tuple(trials), stopped_at_limit=at_limit)
