"""Measure one (mode, length) point: warm-up, memory pass, timed repetitions.

Latency and memory are separate calls: the memory pass is the last warm-up call, so
the allocator-statistics reset never sits inside a timed region.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

import torch

from ctxscope.core import nvml
from ctxscope.core.compat import cache_kwargs, output_cache
from ctxscope.core.inputs import random_token_ids, special_token_ids
from ctxscope.core.loading import LoadedModel
from ctxscope.core.memory import PeakMemory, cache_bytes, module_bytes
from ctxscope.core.results import MemoryStats, Point
from ctxscope.core.spec import SweepConfig
from ctxscope.core.stats import LatencyStats
from ctxscope.core.timing import CallTimer, Cancelled, RepeatPolicy, repeat_timed


WARM_LENGTH = 16


def warm_process(loaded: LoadedModel) -> None:
    """One short untimed pass (and, for decoders, one decode step) before anything is
    measured. The first call into a model allocates one-off state (kernels, mask
    functions, allocator pools: ≈20 MiB on CPU); without this, the first point's memory
    pass counts it as activations and a max-context probe counts it against the budget."""
    from transformers import DynamicCache

    limit = loaded.info.max_positions or WARM_LENGTH + 1
    length = max(1, min(WARM_LENGTH, limit - 1))
    ids = random_token_ids(length, 1, loaded.info.vocab_size, seed=12345,
                           exclude=special_token_ids(loaded.config)).to(loaded.device)
    model = loaded.model
    with torch.inference_mode():
        if not loaded.info.is_decoder:
            model(input_ids=ids)
            return
        kwargs = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        cache = DynamicCache(config=model.config)
        model(input_ids=ids, use_cache=True, **cache_kwargs(model, cache), **kwargs)
        model(input_ids=ids[:, :1], use_cache=True, **cache_kwargs(model, cache), **kwargs)
        del cache


class Measurer:
    """Measures points of one loaded model under one sweep configuration."""

    def __init__(self, loaded: LoadedModel, cfg: SweepConfig, stop: threading.Event | None = None,
                 modes: tuple[str, ...] = ()) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.cfg = cfg
        self.stop = stop
        self.device = loaded.device
        self.timer = CallTimer(loaded.device, multi_device=loaded.device_map is not None)
        self.policy = RepeatPolicy(cfg.min_repeats, cfg.max_repeats, cfg.budget_s, cfg.target_rel_iqr)
        self.weights_bytes = module_bytes(self.model)
        self.exclude = special_token_ids(loaded.config)
        params = inspect.signature(self.model.forward).parameters
        # Keep only the last position's logits, as generate() does: full logits at 32k
        # tokens would cost vocab·L floats that no user pays in practice.
        self.head_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        #: Shapes passed to the model, for tests that check "exactly L tokens".
        self.seen_shapes: list[tuple[str, tuple[int, ...]]] = []
        self._handoff_wanted = cfg.reuse_prefill_cache and loaded.info.is_decoder and "decode" in (modes or ("decode",))
        self._handoff: tuple[int, Any] | None = None
        self._warm = False

    def discard_handoff(self) -> None:
        """Drop a prefill cache kept for the next decode point (frees its memory)."""
        self._handoff = None

    def _keep_for_decode(self, length: int, out: Any) -> None:
        cache = output_cache(out)
        layers = getattr(cache, "layers", None)
        # Sliding-window layers drop old states unless recording was switched on before
        # the prefill, and then cannot be cropped back: those get a fresh prefill.
        if layers and hasattr(cache, "crop") and not any(getattr(layer, "is_sliding", False) for layer in layers):
            self._handoff = (length, cache)

    def _ids(self, length: int, salt: int = 0) -> torch.Tensor:
        ids = random_token_ids(length, self.cfg.batch_size, self.loaded.info.vocab_size,
                               seed=self.cfg.seed + salt, exclude=self.exclude)
        return ids.to(self.device)

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Cancelled

    def _device_used(self) -> int | None:
        indices = range(torch.cuda.device_count()) if self.loaded.device_map else [self.device.index or 0]
        used = [nvml.used_bytes(i) for i in indices]
        return None if any(u is None for u in used) else sum(u for u in used if u is not None)

    def _memory(self, probe: PeakMemory, kv: int) -> MemoryStats:
        if probe.peak_allocated is not None:
            activations = probe.peak_allocated - self.weights_bytes - kv
            return MemoryStats(weights_bytes=self.weights_bytes, kv_cache_bytes=kv, activation_bytes=activations,
                               peak_allocated_bytes=probe.peak_allocated, peak_reserved_bytes=probe.peak_reserved,
                               device_used_bytes=self._device_used())
        grown = (probe.peak_rss or 0) - (probe.rss_before or 0)
        return MemoryStats(weights_bytes=self.weights_bytes, kv_cache_bytes=kv,
                           activation_bytes=max(0, grown - kv), peak_rss_bytes=probe.peak_rss)

    def _run_phases(self, call: Callable[[], Any], kv_of: Callable[[Any], int],
                    after: Callable[[], None] | None = None,
                    keep_last: bool = False) -> tuple[list[float], MemoryStats, Any]:
        for _ in range(max(0, self.cfg.warmup - 1)):
            self._check_stop()
            out = call()
            del out
            if after:
                after()
        self._check_stop()
        with PeakMemory(self.device, all_devices=self.loaded.device_map is not None) as probe:
            out = call()
        if after:
            after()
        kv = kv_of(out)
        del out
        memory = self._memory(probe, kv)
        samples, last = repeat_timed(self.timer, call, self.policy, after=after, stop=self.stop, keep_last=keep_last)
        return samples, memory, last

    def measure(self, mode: str, length: int) -> Point:
        """Measure one point. Raises :class:`Cancelled`, or the model's own exception
        (including out-of-memory) for the caller to turn into a failed point."""
        batch = self.cfg.batch_size
        if not self._warm:
            warm_process(self.loaded)
            self._warm = True
        if mode != "decode" or (self._handoff is not None and self._handoff[0] != length):
            self.discard_handoff()  # never hold a stale cache while measuring
        with torch.inference_mode():
            if mode == "decode":
                samples, memory = self._decode(length)
                tokens = batch
            else:
                ids = self._ids(length)
                self.seen_shapes.append((mode, tuple(ids.shape)))
                if mode == "prefill":
                    def call() -> Any:
                        return self.model(input_ids=ids, use_cache=True, **self.head_kwargs)
                    samples, memory, last = self._run_phases(call, lambda out: cache_bytes(output_cache(out)),
                                                             keep_last=self._handoff_wanted)
                    if last is not None:
                        self._keep_for_decode(length, last)
                    del last
                else:
                    def call() -> Any:
                        return self.model(input_ids=ids)
                    samples, memory, _ = self._run_phases(call, lambda out: 0)
                tokens = batch * length
        stats = LatencyStats.from_samples(samples)
        return Point(mode=mode, length=length, batch_size=batch, status="ok", latency_ms=stats,
                     tokens_per_s=tokens / (stats.median / 1e3), memory=memory)

    def _decode(self, length: int) -> tuple[list[float], MemoryStats]:
        """Per-token latency at depth exactly ``length``: prefill once (untimed), then
        time one-token steps, cropping the cache back to ``length`` after each."""
        from transformers import DynamicCache

        self._check_stop()
        if self._handoff is not None and self._handoff[0] == length:
            # The last timed prefill at this length built exactly this cache (same tokens).
            cache = self._handoff[1]
            self._handoff = None
            self.seen_shapes.append(("decode-prefill-reused", (self.cfg.batch_size, cache.get_seq_length())))
        else:
            cache = DynamicCache(config=self.model.config)
            if hasattr(cache, "activate_past_recording"):
                cache.activate_past_recording()  # sliding-window layers cannot be cropped otherwise
            ids = self._ids(length)
            self.seen_shapes.append(("decode-prefill", tuple(ids.shape)))
            out = self.model(input_ids=ids, use_cache=True, **cache_kwargs(self.model, cache), **self.head_kwargs)
            del out, ids
        step_ids = self._ids(1, salt=7)
        self.seen_shapes.append(("decode", tuple(step_ids.shape)))

        def step() -> Any:
            return self.model(input_ids=step_ids, use_cache=True, **cache_kwargs(self.model, cache), **self.head_kwargs)

        def crop() -> None:
            cache.crop(-1)  # a negative count removes that many tokens (transformers 5)

        samples, memory, _ = self._run_phases(step, lambda _out: cache_bytes(cache), after=crop)
        depth = cache.get_seq_length()
        if depth != length:
            raise RuntimeError(f"decode depth drifted to {depth} tokens instead of {length}")
        return samples, memory
