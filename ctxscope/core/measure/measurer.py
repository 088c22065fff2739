"""Measure one (mode, length) point: memory pass, warm-up, timed repetitions.

Order matters. The memory pass comes first, on the state every timed call will see,
between a reset of the allocator's peak statistics and a synchronisation; then the
warm-up calls (``cfg.warmup``, never fewer than one), so the first timed sample is
warm — the memory pass is not a warm-up; then the timed calls, whose window is
recorded so telemetry and interference describe exactly them.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

import torch

from ctxscope.core.machine import interference, nvml
from ctxscope.core.measure.accounting import split_memory
from ctxscope.core.model.compat import cache_kwargs, output_cache
from ctxscope.core.measure.inputs import random_token_ids, special_token_ids
from ctxscope.core.measure.kv_cache import KVOptions, make_cache
from ctxscope.core.model.loading import LoadedModel
from ctxscope.core.measure.cache_storage import cache_bytes, state_bytes
from ctxscope.core.measure.memory import PeakMemory, model_devices, module_bytes
from ctxscope.core.measure.offload import host_bytes, metered_step, offloaded
from ctxscope.core.results import MemoryStats, Point
from ctxscope.core.measure.rollback import CacheRollback, attention_depth
from ctxscope.core.spec import SweepConfig
from ctxscope.core.stats import LatencyStats
from ctxscope.core.measure.timing import CallTimer, Cancelled, RepeatPolicy, repeat_timed

WARM_LENGTH = 16
#: A decode point's cache is built by a prefill of L − 2 tokens and two real decode steps,
#: not a prefill of L: after a prefill, sliding-window layers still hold (a view of) the
#: whole prefill buffer until their next update. Two steps bring every layer to the storage
#: it keeps while decoding; the timed steps then start from depth L.
SETTLE_STEPS = 2
#: (KV bytes, state bytes) a cache holds.
Held = tuple[int, int]


def held(cache: Any) -> Held:
    """What a cache holds: key/value storage and recurrent/convolution state storage."""
    return cache_bytes(cache), state_bytes(cache)


def warm_process(loaded: LoadedModel) -> None:
    """One short untimed pass (and, for decoders, one decode step) before anything is
    measured. The first call into a model allocates one-off state (kernels, mask
    functions, allocator pools: ≈20 MiB on CPU); without this, the first point's memory
    pass counts it as activations and a max-context probe counts it against the budget."""
    from transformers import DynamicCache

    limit = loaded.info.position_limit or loaded.info.max_positions or WARM_LENGTH + 1
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
        # The GPUs the model really occupies (several under a device map): peaks,
        # synchronisation, weights and telemetry cover those, not every visible GPU.
        self.devices = model_devices(loaded.model) if loaded.device.type == "cuda" else ()
        self.uuids = tuple(u for d in self.devices if (u := nvml.torch_uuid(d.index or 0)) is not None)
        self.timer = CallTimer(loaded.device, devices=self.devices)
        self.policy = RepeatPolicy(cfg.min_repeats, cfg.max_repeats, cfg.budget_s, cfg.target_rel_iqr)
        self.weights_bytes = sum(module_bytes(self.model, d) for d in self.devices) if self.devices \
            else module_bytes(self.model)
        self.exclude = special_token_ids(loaded.config)
        params = inspect.signature(self.model.forward).parameters
        # Keep only the last position's logits, as generate() does: full logits at 32k
        # tokens would cost vocab·L floats that no user pays in practice.
        self.head_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.static = cfg.cache == "static"
        self.offload = cfg.cache == "offload"
        self._host = 0  # offload: the host share of the cache last counted by _held
        self.kv_options = KVOptions(group_size=cfg.kv_group_size, residual=cfg.kv_residual)
        # A static cache is reset after every prefill call: nothing to hand over.
        self._handoff_wanted = (cfg.reuse_prefill_cache and not self.static and loaded.info.is_decoder
                                and "decode" in (modes or ("decode",)))
        self._handoff: tuple[int, Any] | None = None
        self._warm = False
        #: The timed window of the last measured point (telemetry is summarised over it).
        self.last_window: interference.Window | None = None

    def discard_handoff(self) -> None:
        """Drop a prefill cache kept for the next decode point (frees its memory)."""
        self._handoff = None

    def _keep_for_decode(self, length: int, out: Any) -> None:
        cache = output_cache(out)
        layers = getattr(cache, "layers", None)
        # A sliding-window layer still holds (a view of) the whole prefill buffer after a
        # prefill: such a cache is not what decoding holds, so those get a fresh build.
        if layers and not any(getattr(layer, "is_sliding", False) for layer in layers):
            self._handoff = (length, cache)

    def _ids(self, length: int, salt: int = 0) -> torch.Tensor:
        ids = random_token_ids(length, self.cfg.batch_size, self.loaded.info.vocab_size,
                               seed=self.cfg.seed + salt, exclude=self.exclude)
        return ids.to(self.device)

    def _static_cache(self, length: int) -> Any:
        """A ``StaticCache`` for a prompt of ``length`` and one generated token, allocated
        up front on the model's device (as compiled generation sizes it)."""
        return make_cache("static", self.model.config, length=length)

    def _new_cache(self, length: int) -> Any:
        """A fresh cache of the sweep's strategy (:mod:`ctxscope.core.measure.kv_cache`)."""
        return make_cache(self.cfg.cache, self.model.config, length=length, options=self.kv_options)

    def _held(self, cache: Any) -> Held:
        """What a cache holds *on the device*: an offloaded cache's host share is not in
        the device's peak, so the split must not subtract it (it is added back after)."""
        kv, state = held(cache)
        if not self.offload:
            return kv, state
        self._host = host_bytes(cache)
        return kv - self._host, state

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Cancelled

    def _memory(self, probe: PeakMemory, before: Held, after: Held) -> MemoryStats:
        # The cache as a whole (KV + recurrent state) is what the split subtracts; the two
        # are then reported apart.
        kv_before, kv_after = sum(before), sum(after)
        kv, state = after
        if probe.peak_allocated is not None and probe.allocated_before is not None:
            split = split_memory(weights=self.weights_bytes, allocated_before=probe.allocated_before,
                                 peak=probe.peak_allocated, kv_before=kv_before, kv_after=kv_after,
                                 reserved_peak=probe.peak_reserved)
            return MemoryStats(weights_bytes=split.weights, kv_cache_bytes=kv, state_bytes=state,
                               activation_bytes=split.activations, other_bytes=split.other,
                               allocated_before_bytes=probe.allocated_before,
                               peak_allocated_bytes=probe.peak_allocated, peak_reserved_bytes=probe.peak_reserved,
                               device_used_bytes=probe.process_peak,
                               accounting_note="; ".join(split.notes) or None)
        # CPU: the allocator's growth during the pass (repeatable) where the profiler gave
        # it; the RSS high-water otherwise (it moves with arenas and reused pages).
        rss_before = probe.rss_before or 0
        grown = probe.alloc_peak if probe.alloc_peak is not None else (probe.peak_rss or 0) - rss_before
        split = split_memory(weights=self.weights_bytes, allocated_before=rss_before, peak=rss_before + grown,
                             kv_before=kv_before, kv_after=kv_after)
        return MemoryStats(weights_bytes=split.weights, kv_cache_bytes=kv, state_bytes=state,
                           activation_bytes=split.activations, other_bytes=split.other,
                           allocated_before_bytes=probe.rss_before, peak_rss_bytes=probe.peak_rss,
                           cpu_allocator_peak_bytes=probe.alloc_peak)

    def _run_phases(self, call: Callable[[], Any], kv_of: Callable[[Any], Held], *,
                    after: Callable[[], None] | None = None, kv_before: Held = (0, 0),
                    keep_last: bool = False) -> tuple[list[float], MemoryStats, Any]:
        self._check_stop()
        point_start = interference.read(())  # CPU counters only: the point's whole span
        with PeakMemory(self.devices, uuids=self.uuids) as probe:
            out = call()
        kv_after = kv_of(out)  # what the pass left allocated, before any crop
        del out
        if after:
            after()
        memory = self._memory(probe, kv_before, kv_after)
        for _ in range(max(1, self.cfg.warmup)):
            self._check_stop()
            out = call()
            del out
            if after:
                after()
        start = interference.read(self.uuids)
        samples, last = repeat_timed(self.timer, call, self.policy, after=after, stop=self.stop, keep_last=keep_last)
        self.last_window = interference.Window(start, interference.read(self.uuids), cpu_start=point_start)
        return samples, memory, last

    def measure(self, mode: str, length: int) -> Point:
        """Measure one point. Raises :class:`Cancelled`, or the model's own exception
        (including out-of-memory) for the caller to turn into a failed point."""
        batch = self.cfg.batch_size
        self.last_window = None
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
                if mode == "prefill" and self.static:
                    cache = self._static_cache(length)

                    def call() -> Any:
                        return self.model(input_ids=ids, use_cache=True, **cache_kwargs(self.model, cache),
                                          **self.head_kwargs)
                    # The buffer is allocated before the memory pass and reset (untimed)
                    # after each call: a static cache's memory is all "before".
                    samples, memory, last = self._run_phases(call, lambda out: held(cache), after=cache.reset,
                                                             kv_before=held(cache))
                    del cache
                elif mode == "prefill":
                    # Any strategy but the default gets a fresh cache of its own per call, built
                    # inside the timed call: a quantized prefill pays its quantization there.
                    own = self.cfg.cache != "dynamic"

                    def call() -> Any:
                        extra = cache_kwargs(self.model, self._new_cache(length)) if own else {}
                        return self.model(input_ids=ids, use_cache=True, **extra, **self.head_kwargs)
                    samples, memory, last = self._run_phases(call, lambda out: self._held(output_cache(out)),
                                                             keep_last=self._handoff_wanted)
                    if self.offload:
                        memory = offloaded(memory, self._host, None)
                    if last is not None:
                        self._keep_for_decode(length, last)
                    del last
                else:
                    def call() -> Any:
                        return self.model(input_ids=ids)
                    samples, memory, _ = self._run_phases(call, lambda out: (0, 0))
                tokens = batch * length
        stats = LatencyStats.from_samples(samples)
        return Point(mode=mode, length=length, batch_size=batch, status="ok", latency_ms=stats,
                     tokens_per_s=tokens / (stats.median / 1e3), memory=memory)

    def _decode(self, length: int) -> tuple[list[float], MemoryStats]:
        """Per-token latency at depth exactly ``length``: build the cache of depth L once
        (untimed), then time one-token steps, restoring the cache to depth L after each
        (:class:`~ctxscope.core.measure.rollback.CacheRollback`: any layer kind, any cache)."""
        self._check_stop()
        if self._handoff is not None and self._handoff[0] == length:
            # The last timed prefill at this length built exactly this cache (same tokens).
            cache = self._handoff[1]
            self._handoff = None
        else:
            cache = self._new_cache(length)
            ids = self._ids(length)
            settle = min(SETTLE_STEPS, length - 1)
            out = self.model(input_ids=ids[:, :length - settle], use_cache=True, **cache_kwargs(self.model, cache),
                             **self.head_kwargs)
            del out
            for i in range(length - settle, length):
                self._check_stop()
                out = self.model(input_ids=ids[:, i:i + 1], use_cache=True, **cache_kwargs(self.model, cache),
                                 **self.head_kwargs)
                del out
            del ids
        rollback = CacheRollback(cache)
        step_ids = self._ids(1, salt=7)

        def step() -> Any:
            return self.model(input_ids=step_ids, use_cache=True, **cache_kwargs(self.model, cache),
                              **self.head_kwargs)

        samples, memory, _ = self._run_phases(step, lambda _out: self._held(cache), after=rollback,
                                              kv_before=self._held(cache))
        if self.offload:  # what one more (untimed) step moves: the price per token
            traffic = metered_step(cache, step)
            rollback()
            memory = offloaded(memory, self._host, traffic.total)  # host share after the memory pass
        depth = attention_depth(cache)
        if depth is not None and depth != length:
            raise RuntimeError(f"decode depth drifted to {depth} tokens instead of {length}")
        return samples, memory
