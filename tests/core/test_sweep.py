"""The sweep generator: exact lengths, memory accounting, OOM as data, cancellation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from ctxscope.core.model.compat import cache_argument, cache_kwargs
from ctxscope.core.errors import BadInputError
from ctxscope.core.events import PointFailed, PointResult, Progress, SweepStarted
from ctxscope.core.model.loading import load_model
from ctxscope.core.measure.measurer import Measurer
from ctxscope.core.spec import ModelSpec
from ctxscope.core.jobs.sweep import run_sweep
from ctxscope.core.machine.telemetry import TelemetrySample
from tests.conftest import drain, fast_config


def kv_formula(info, length: int, batch: int, bytes_per: int) -> int:
    return 2 * info.num_layers * info.num_kv_heads * info.head_dim * length * batch * bytes_per


def test_event_order_and_points(loaded_llama) -> None:
    events, run = drain(run_sweep(loaded_llama, fast_config((16, 32))))
    assert isinstance(events[0], SweepStarted) and events[0].header.id == run.id
    kinds = [type(e) for e in events if not isinstance(e, TelemetrySample)]
    assert kinds == [SweepStarted] + [Progress, PointResult] * 4
    assert run.status == "complete"
    assert [(p.mode, p.length) for p in run.points] == [("prefill", 16), ("decode", 16), ("prefill", 32), ("decode", 32)]
    assert run.header.settings.modes == ("prefill", "decode") and run.header.model.random_weights


def spy_calls(model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Record every model call as (batch, new tokens, tokens already cached) — from the
    outside, so the test does not rely on anything the Measurer says about itself."""
    calls: list[tuple[int, int, int]] = []
    original = model.forward

    def forward(*args, **kwargs):
        ids = kwargs["input_ids"]
        cache = kwargs.get(cache_argument(model))
        calls.append((ids.shape[0], ids.shape[1], int(cache.get_seq_length()) if cache is not None else 0))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    return calls


def test_exact_lengths_and_kv_bytes(loaded_llama, monkeypatch) -> None:
    """Exactly L tokens per call; KV bytes are the storage the cache holds: L tokens
    after a prefill, L + 1 after a decode step at depth L (the step's concatenation;
    cropping back leaves a view of that storage)."""
    cfg = fast_config((17, 64), batch_size=2)
    measurer = Measurer(loaded_llama, cfg)
    measurer.measure("prefill", 4)  # the one-off process warm-up happens here, not below
    calls = spy_calls(loaded_llama.model, monkeypatch)
    for length in cfg.lengths:
        for mode in ("prefill", "decode"):
            calls.clear()
            point = measurer.measure(mode, length)
            stored = length + (mode == "decode")
            assert point.memory.kv_cache_bytes == kv_formula(loaded_llama.info, stored, 2, 4), (mode, length)
            assert point.memory.weights_bytes > 0 and point.tokens_per_s > 0
            if mode == "prefill":
                assert set(calls) == {(2, length, 0)}
            else:
                # Decode reused the last timed prefill's cache (same tokens): no prefill,
                # every step sees exactly L cached tokens.
                assert set(calls) == {(2, 1, length)}


def test_decode_without_prefill_handoff(loaded_llama, monkeypatch) -> None:
    calls = spy_calls(loaded_llama.model, monkeypatch)
    for reuse in (False, True):
        measurer = Measurer(loaded_llama, fast_config((32,), reuse_prefill_cache=reuse))
        measurer.measure("prefill", 32)
        calls.clear()
        point = measurer.measure("decode", 32)
        assert point.memory.kv_cache_bytes == kv_formula(loaded_llama.info, 33, 1, 4)
        # Without the hand-off, its own build: a prefill of L − 2 and two real steps to depth L.
        built = [(1, 30, 0), (1, 1, 30), (1, 1, 31)]
        assert (calls[:3] == built) != reuse
        assert {c for c in calls[(0 if reuse else 3):]} == {(1, 1, 32)}  # every timed step at depth L
    # A prefill-only sweep keeps no cache for a decode that will not come.
    measurer = Measurer(loaded_llama, fast_config((32,)), modes=("prefill",))
    measurer.measure("prefill", 32)
    assert measurer._handoff is None


def test_sliding_window_kv_is_the_storage_held(tiny_config_files: dict[str, Path], monkeypatch) -> None:
    """Mistral with a 16-token window. After a prefill of L tokens every sliding layer
    keeps a view of its whole L-token buffer: that storage is what is held. While
    decoding, each layer holds the window (15 kept + the new token) whatever L is, and
    the memory pass runs in that state (the old bug: with past recording the layers held
    all L tokens until the first crop, which was the memory pass)."""
    loaded = load_model(ModelSpec(str(tiny_config_files["mistral"]), device="cpu"))
    window = 16
    measurer = Measurer(loaded, fast_config((64, 1024)))
    calls = spy_calls(loaded.model, monkeypatch)
    decode = {}
    for length in (64, 1024):
        prefill = measurer.measure("prefill", length)
        assert prefill.memory.kv_cache_bytes == kv_formula(loaded.info, length, 1, 4)
        calls.clear()
        decode[length] = measurer.measure("decode", length)
        assert decode[length].memory.kv_cache_bytes == kv_formula(loaded.info, window, 1, 4)
        # A prefill leaves sliding layers holding the whole prefill buffer: decode built its
        # own cache (a prefill of L − 2 and two steps), not the prefill's.
        assert (1, length - 2, 0) in calls
    # The step's own memory does not grow with the depth: its window is the same.
    assert decode[1024].memory.activation_bytes <= decode[64].memory.activation_bytes + (1 << 20)


@pytest.mark.parametrize("name", ["llama", "mistral", "gpt2"])
def test_decode_at_depth_matches_full_recompute(tiny_config_files: dict[str, Path], name: str) -> None:
    """The decode method (prefill L, step, crop back, step again) sees exactly L cached
    tokens: the step's logits equal a full forward over L+1 tokens, every time."""
    from transformers import DynamicCache

    loaded = load_model(ModelSpec(str(tiny_config_files[name]), device="cpu"))
    model = loaded.model
    ids = torch.randint(3, 256, (1, 40))
    nxt = torch.tensor([[7]])
    with torch.inference_mode():
        reference = model(input_ids=torch.cat([ids, nxt], 1)).logits[:, -1]
        cache = DynamicCache(config=model.config)
        cache.activate_past_recording()
        model(input_ids=ids, use_cache=True, **cache_kwargs(model, cache))
        for _ in range(3):
            step = model(input_ids=nxt, use_cache=True, **cache_kwargs(model, cache)).logits[:, -1]
            cache.crop(-1)
            assert cache.get_seq_length() == 40
            torch.testing.assert_close(step, reference, atol=1e-4, rtol=1e-4)


def test_repetition_policy_bounds(loaded_llama) -> None:
    _, run = drain(run_sweep(loaded_llama, fast_config((16,), min_repeats=4, max_repeats=6, budget_s=10.0)))
    for point in run.points:
        assert 4 <= point.latency_ms.n <= 6 and len(point.latency_ms.samples) == point.latency_ms.n
        assert all(s > 0 for s in point.latency_ms.samples)
    _, run = drain(run_sweep(loaded_llama, fast_config((16,), min_repeats=7, max_repeats=7, target_rel_iqr=1.0)))
    assert all(p.latency_ms.n == 7 for p in run.points)


def test_encoder_forward_only(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["bert"]), device="cpu"))
    _, run = drain(run_sweep(loaded, fast_config((16, 32))))
    assert [(p.mode, p.status) for p in run.points] == [("forward", "ok"), ("forward", "ok")]
    assert all(p.memory.kv_cache_bytes == 0 for p in run.points)
    with pytest.raises(BadInputError, match="encoder"):
        next(run_sweep(loaded, fast_config((16,), modes=("decode",))))


def test_refuses_lengths_beyond_max_positions(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["gpt2"]), device="cpu"))
    with pytest.raises(BadInputError, match="256 positions"):
        next(run_sweep(loaded, fast_config((128, 300))))
    # GPT-2's positions are a learned table: beyond it nothing can run, so even
    # allow_beyond_max is refused before any model call (on CUDA the lookup would be a
    # device-side assert that leaves the process's CUDA context unusable).
    assert loaded.info.position_limit == 256
    with pytest.raises(BadInputError, match="learned table of 256 positions: length 300 cannot run"):
        next(run_sweep(loaded, fast_config((300,), modes=("prefill",), allow_beyond_max=True)))
    llama = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu"))
    assert llama.info.position_limit is None  # rotary: computed positions, it can try
    _, run = drain(run_sweep(llama, fast_config((600,), modes=("prefill",), allow_beyond_max=True)))
    assert run.points[0].status == "ok"


def test_decode_at_max_positions_is_skipped_with_a_reason(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["gpt2"]), device="cpu"))
    _, run = drain(run_sweep(loaded, fast_config((255, 256))))
    status = {(p.mode, p.length): p for p in run.points}
    assert status[("prefill", 256)].status == "ok" and status[("decode", 255)].status == "ok"
    assert status[("decode", 256)].status == "skipped" and "needs position 256" in status[("decode", 256)].error


@pytest.mark.parametrize("kw", [dict(batch_size=0), dict(modes=("sideways",)), dict(warmup=0), dict(min_repeats=0),
                                dict(max_repeats=1, min_repeats=3)])
def test_bad_sweep_configs(loaded_llama, kw: dict) -> None:
    with pytest.raises(BadInputError):
        next(run_sweep(loaded_llama, fast_config((16,), **kw)))


def _oom_above(model: torch.nn.Module, limit: int, monkeypatch: pytest.MonkeyPatch, exc: Exception | None = None) -> None:
    original = model.forward

    def forward(*args, **kwargs):
        ids = kwargs.get("input_ids")
        cache = kwargs.get(cache_argument(model))
        depth = cache.get_seq_length() if cache is not None else 0
        if ids is not None and ids.shape[1] + depth > limit:
            # Hold memory as a real failing pass would, to check it is released.
            _ballast = torch.empty(1 << 20)
            raise exc or torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)


def test_oom_is_data_and_longer_lengths_are_skipped(tiny_config_files, monkeypatch) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu"))
    _oom_above(loaded.model, 48, monkeypatch)
    events, run = drain(run_sweep(loaded, fast_config((16, 32, 64, 128))))
    statuses = {(p.mode, p.length): p.status for p in run.points}
    assert statuses[("prefill", 32)] == "ok" and statuses[("prefill", 64)] == "oom"
    assert statuses[("prefill", 128)] == "skipped" and statuses[("decode", 128)] == "skipped"
    assert run.status == "complete" and len(run.points) == 8
    failed = [e.point for e in events if isinstance(e, PointFailed)]
    assert {p.status for p in failed} == {"oom", "skipped"}
    assert "out of memory" in next(p.error for p in failed if p.status == "oom")
    # The model is still loaded and usable.
    monkeypatch.undo()
    _, again = drain(run_sweep(loaded, fast_config((64,))))
    assert all(p.status == "ok" for p in again.points)


def test_continue_after_oom_tries_longer_lengths(tiny_config_files, monkeypatch) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu"))
    _oom_above(loaded.model, 48, monkeypatch, exc=RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    _, run = drain(run_sweep(loaded, fast_config((64, 128), modes=("prefill",), continue_after_oom=True)))
    assert [p.status for p in run.points] == ["oom", "oom"]


def test_model_errors_are_points_not_crashes(tiny_config_files, monkeypatch) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu"))
    _oom_above(loaded.model, 20, monkeypatch, exc=ValueError("kernel does not support this shape"))
    _, run = drain(run_sweep(loaded, fast_config((16, 32))))
    assert [p.status for p in run.points] == ["ok", "ok", "error", "error"]
    assert "ValueError: kernel does not support" in run.points[2].error


def test_cancel_between_points_keeps_completed(loaded_llama) -> None:
    stop = threading.Event()
    gen = run_sweep(loaded_llama, fast_config((16, 32, 64)), stop=stop)
    seen = []
    while True:
        try:
            event = next(gen)
        except StopIteration as done:
            run = done.value
            break
        if isinstance(event, PointResult):
            seen.append(event.point)
            stop.set()
    assert run.status == "cancelled" and list(run.points) == seen and len(seen) == 1


def test_cancel_mid_point_stops_after_the_current_call(tiny_config_files, monkeypatch) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu"))
    stop = threading.Event()
    calls = {"n": 0}
    original = loaded.model.forward

    def forward(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            stop.set()  # as if the user pressed Cancel during this model call
        return original(*args, **kwargs)

    monkeypatch.setattr(loaded.model, "forward", forward)
    _, run = drain(run_sweep(loaded, fast_config((16, 32), max_repeats=50, budget_s=30, target_rel_iqr=0.0), stop=stop))
    assert run.status == "cancelled" and run.points == ()
    assert calls["n"] == 3  # no model call after the stop was seen


def test_cancel_before_start(loaded_llama) -> None:
    stop = threading.Event()
    stop.set()
    events, run = drain(run_sweep(loaded_llama, fast_config((16,)), stop=stop))
    assert run.status == "cancelled" and run.points == () and isinstance(events[0], SweepStarted)


def test_telemetry_samples(loaded_llama) -> None:
    from ctxscope.core.machine.telemetry import TelemetrySampler

    with TelemetrySampler(hz=50) as sampler:
        threading.Event().wait(0.3)
        samples = sampler.drain()
    assert len(samples) >= 5
    assert all(s.rss_bytes > 0 and 0 <= s.cpu_percent for s in samples)
    assert [s.t for s in samples] == sorted(s.t for s in samples)
    if not torch.cuda.is_available():
        assert all(s.gpu_util_percent is None for s in samples)


def test_same_inputs_for_same_seed() -> None:
    from ctxscope.core.measure.inputs import random_token_ids

    a = random_token_ids(100, 2, 50, seed=3, exclude={0, 1, 2})
    b = random_token_ids(100, 2, 50, seed=3, exclude={0, 1, 2})
    assert torch.equal(a, b) and a.shape == (2, 100)
    assert not torch.isin(a, torch.tensor([0, 1, 2])).any()
    assert not torch.equal(a, random_token_ids(100, 2, 50, seed=4, exclude={0, 1, 2}))


def test_static_cache_steps_at_exact_depth(tiny_config_files: dict[str, Path], monkeypatch) -> None:
    """--cache static: one preallocated buffer of L + 1 tokens, written in place; every
    timed step sees exactly L cached tokens and equals a full recompute."""
    from transformers import StaticCache

    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu"))
    model = loaded.model
    ids, nxt = torch.randint(3, 256, (1, 40)), torch.tensor([[7]])
    with torch.inference_mode():
        reference = model(input_ids=torch.cat([ids, nxt], 1)).logits[:, -1]
        cache = StaticCache(config=model.config, max_cache_len=41)
        model(input_ids=ids, use_cache=True, **cache_kwargs(model, cache))
        for _ in range(3):
            step = model(input_ids=nxt, use_cache=True, **cache_kwargs(model, cache)).logits[:, -1]
            cache.crop(-1)
            assert int(cache.get_seq_length()) == 40
            torch.testing.assert_close(step, reference, atol=1e-4, rtol=1e-4)
    calls = spy_calls(model, monkeypatch)
    _, run = drain(run_sweep(loaded, fast_config((32, 64), cache="static")))
    assert run.header.settings.cache == "static" and all(p.status == "ok" for p in run.points)
    steps = {c for c in calls if c[1] == 1} - {(1, 1, 16)}  # the process warm-up's own step is at 16
    # The untimed build (L − 2 prefilled, two steps), then every step at depth exactly L.
    assert steps == {(1, 1, 30), (1, 1, 31), (1, 1, 32), (1, 1, 62), (1, 1, 63), (1, 1, 64)}
    assert calls.count((1, 1, 32)) >= 3 and calls.count((1, 1, 30)) == calls.count((1, 1, 31)) == 1
    for p in run.points:  # the buffer holds L + 1 tokens from the start
        assert p.memory.kv_cache_bytes == kv_formula(loaded.info, p.length + 1, 1, 4)
    mistral = load_model(ModelSpec(str(tiny_config_files["mistral"]), device="cpu"))
    with pytest.raises(BadInputError, match="16-token sliding windows"):
        next(run_sweep(mistral, fast_config((64,), cache="static")))
