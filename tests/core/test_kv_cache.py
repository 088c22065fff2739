"""KV-cache strategies: bytes counted from the cache's own storage (quantized tensors,
scales, zero-points, the residual window), decode rollback exact on a quantized layer,
decode = full recompute within quantization error, refusals per layer kind, and the
quality pass reading its targets through the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctxscope.core.measure.cache_storage import cache_bytes
from ctxscope.core.errors import BadInputError
from ctxscope.core.measure.kv_cache import (KVOptions, check_options, check_strategy, int_backend, make_cache, parse_caches,
                                    refusal)
from ctxscope.core.measure.rollback import CacheRollback

needs_int = pytest.mark.skipif(int_backend() is None,
                               reason="neither optimum-quanto nor hqq is installed (pip install 'ctxscope[kv]')")


def _has(module: str) -> bool:
    import importlib.util

    root = module.split(".")[0]
    return importlib.util.find_spec(root) is not None and importlib.util.find_spec(module) is not None


#: Each group-wise backend where it is installed (ctxscope uses optimum-quanto when both are).
BACKENDS = [pytest.param("quanto", marks=pytest.mark.skipif(not _has("optimum.quanto"),
                                                             reason="optimum-quanto is not installed")),
            pytest.param("hqq", marks=pytest.mark.skipif(not _has("hqq"), reason="hqq is not installed"))]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch) -> str:
    """The group-wise backend make_cache builds with, one test per installed backend."""
    from ctxscope.core.measure import kv_cache

    monkeypatch.setattr(kv_cache, "int_backend", lambda: request.param)
    return request.param


@pytest.fixture(scope="module")
def llama():
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=256, max_position_embeddings=2048,
                      architectures=["LlamaForCausalLM"])
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg).eval()


def _filled(model, strategy: str, length: int, **options):
    cache = make_cache(strategy, model.config, length=length, options=KVOptions(**options))
    ids = torch.randint(0, 256, (1, length), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        model(input_ids=ids, use_cache=True, cache=cache)
    return cache, ids


def _own_bytes(cache) -> int:
    """Bytes the layers' tensors hold, read off each backend's own layout by hand."""
    total = 0
    for layer in cache.layers:
        for t in (layer.keys, layer.values):
            total += t.numel() * t.element_size()  # the full-precision residual window
        for q in (layer._quantized_keys, layer._quantized_values):
            if isinstance(q, tuple) and isinstance(q[1], dict):  # hqq: (packed tensor, meta with scale, zero)
                total += sum(t.numel() * t.element_size() for t in (q[0], q[1]["scale"], q[1]["zero"]))
            elif isinstance(q, tuple):  # fp8: (float8 tensor, per-tensor scale)
                total += sum(t.numel() * t.element_size() for t in q)
            else:  # optimum-quanto: packed data, scale, zero-point (shift)
                data = q._data
                packed = data._data if hasattr(data, "_data") else data
                total += sum(t.numel() * t.element_size() for t in (packed, q._scale, q._shift))
    return total


def test_fp8_holds_at_most_half_the_default_cache_at_depth_1024(llama) -> None:
    dynamic, _ = _filled(llama, "dynamic", 1024)
    fp8, _ = _filled(llama, "fp8", 1024)
    assert fp8.layers[0]._quantized_keys[0].dtype == torch.float8_e4m3fn
    assert cache_bytes(fp8) == _own_bytes(fp8)  # counted from its storage: float8 tensors and their scales
    assert cache_bytes(fp8) <= cache_bytes(dynamic) / 2
    # float32 → float8: a quarter, plus one float32 scale per layer tensor (4 tensors here).
    assert cache_bytes(fp8) == cache_bytes(dynamic) // 4 + 4 * 4


@pytest.mark.parametrize("strategy,bits", [("int4", 4), ("int2", 2)])
def test_group_wise_bytes_count_data_scales_zero_points_and_residual(llama, backend, strategy, bits) -> None:
    cache, _ = _filled(llama, strategy, 1000, group_size=32, residual=64)
    layer = cache.layers[0]
    assert type(layer).__name__ == {"quanto": "QuantoQuantizedLayer", "hqq": "HQQQuantizedLayer"}[backend]
    assert layer.keys.numel() == 0  # the prefill went into the quantized part whole
    assert cache_bytes(cache) == _own_bytes(cache)
    # A step adds one full-precision token to the residual window: counted too.
    with torch.inference_mode():
        llama(input_ids=torch.tensor([[3]]), use_cache=True, cache=cache)
    assert layer.keys.shape[-2] == 1
    assert cache_bytes(cache) == _own_bytes(cache)
    dynamic, _ = _filled(llama, "dynamic", 1000)
    elements = sum(t.numel() for layer in dynamic.layers for t in (layer.keys, layer.values))
    groups = elements // 32
    assert cache_bytes(cache) - 2 * 2 * 2 * 16 * 4 == elements * bits // 8 + groups * 2 * 4  # data + scale, shift


@pytest.fixture(params=["fp8", *(pytest.param(f"int4-{b.values[0]}", marks=b.marks) for b in BACKENDS)])
def quantized(request, monkeypatch) -> str:
    """fp8, and int4 through each installed group-wise backend."""
    from ctxscope.core.measure import kv_cache

    strategy, _, backend = request.param.partition("-")
    if backend:
        monkeypatch.setattr(kv_cache, "int_backend", lambda: backend)
    return strategy


def test_rollback_restores_a_quantized_cache_exactly(llama, quantized) -> None:
    strategy = quantized
    cache, ids = _filled(llama, strategy, 200, **({"group_size": 32, "residual": 16} if strategy == "int4" else {}))
    before = cache_bytes(cache)
    rollback = CacheRollback(cache)
    step = torch.tensor([[7]])
    outs = []
    with torch.inference_mode():
        for _ in range(3):
            outs.append(llama(input_ids=step, use_cache=True, cache=cache).logits)
            rollback()
            assert cache.get_seq_length() == 200 and cache_bytes(cache) == before
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[1], outs[2])  # bit-identical repeats


def test_decode_equals_full_recompute_within_quantization_error(llama, quantized) -> None:
    """A step through the quantized cache against one forward of all L + 1 tokens in full
    precision. fp8 e4m3 keeps 3 mantissa bits (relative error ≤ 2⁻⁴ per element), int4
    15 levels per group: the logits move, but by a small fraction of their range — and
    they do move (the cache really is quantized)."""
    strategy = quantized
    cache, ids = _filled(llama, strategy, 300, **({"group_size": 32, "residual": 16} if strategy == "int4" else {}))
    step = torch.tensor([[7]])
    with torch.inference_mode():
        stepped = llama(input_ids=step, use_cache=True, cache=cache).logits[0, -1]
        full = llama(input_ids=torch.cat([ids, step], dim=1)).logits[0, -1]
    diff = float((stepped - full).abs().max())
    span = float(full.max() - full.min())
    assert 0 < diff <= 0.05 * span


def test_a_residual_longer_than_the_context_quantizes_nothing_and_matches_exactly(llama, backend) -> None:
    cache, ids = _filled(llama, "int4", 100, group_size=32, residual=1000)
    step = torch.tensor([[7]])
    with torch.inference_mode():
        llama(input_ids=step, use_cache=True, cache=cache)  # the first update after the prefill
        cache_full = llama(input_ids=torch.tensor([[9]]), use_cache=True, cache=cache).logits[0, -1]
        full = llama(input_ids=torch.cat([ids, step, torch.tensor([[9]])], dim=1)).logits[0, -1]
    # Only the prefill (quantized at once, as transformers does) is lossy here; the steps are not.
    assert cache.layers[0].keys.shape[-2] == 2
    assert torch.allclose(cache_full, full, atol=0.05 * float(full.max() - full.min()))


def test_strategies_parse_and_options_apply_only_where_they_mean_something() -> None:
    assert parse_caches("dynamic, fp8,fp8") == ("dynamic", "fp8")
    with pytest.raises(BadInputError, match="unknown cache 'int3'"):
        parse_caches("dynamic,int3")
    with pytest.raises(BadInputError, match="one scale per layer tensor"):
        check_options("fp8", KVOptions(group_size=32))
    with pytest.raises(BadInputError, match="at least 1"):
        check_options("int4", KVOptions(group_size=0))
    check_options(("dynamic", "int4"), KVOptions(group_size=32, residual=0))  # for the int4 cell of the list


def test_refusals_per_layer_kind_and_device() -> None:
    assert refusal("fp8", ("full_attention",) * 2, "cpu") is None
    assert "sliding-window" in (refusal("fp8", ("sliding_attention", "full_attention"), "cpu") or "")
    assert "nothing that grows with the context" in (refusal("fp8", ("linear_attention",), "cpu") or "")
    assert "nothing that grows" in (refusal("int4", ("conv", "full_attention"), "cpu") or "")
    assert "hybrid" in (refusal("fp8", ("hybrid",), "cpu") or "")
    assert "CUDA device" in (refusal("offload", ("full_attention",), "cpu") or "")
    assert refusal("offload", ("linear_attention", "full_attention"), "cuda") is None
    assert "encoder" in (refusal("fp8", (), "cpu", is_decoder=False) or "")
    assert refusal("dynamic", ("mamba",), "cpu") is None


def test_a_missing_integer_backend_names_the_extra(monkeypatch) -> None:
    import ctxscope.core.measure.kv_cache as kv

    monkeypatch.setattr(kv, "int_backend", lambda: None)
    reason = kv.refusal("int4", ("full_attention",), "cpu") or ""
    assert "ctxscope[kv]" in reason and "hqq" in reason


@pytest.mark.parametrize("family,word", [("mamba", "recurrent state"), ("gemma3_text", "sliding-window"),
                                         ("lfm2", "convolution state"), ("qwen3_next", "recurrent state")])
def test_families_are_refused_from_their_config(family, word) -> None:
    from tests.core.families import family_config

    with pytest.raises(BadInputError, match=word):
        check_strategy("fp8", family_config(family), "cpu")
    check_strategy("dynamic", family_config(family), "cpu")


def test_quality_read_through_the_default_cache_equals_the_cacheless_forward(llama) -> None:
    """The cache path measures only the strategy: through a dynamic cache, the same logits."""
    from ctxscope.core.measure.kv_cache import factory
    from ctxscope.core.quality.targets import cached_logits, last_logits

    ids = torch.randint(0, 256, (1, 120), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        plain = last_logits(llama, ids, 16)
        through = cached_logits(llama, ids, 16, factory("dynamic", llama.config))
        fp8 = cached_logits(llama, ids, 16, factory("fp8", llama.config))
    assert through.shape == plain.shape == (1, 16, 256)
    assert torch.allclose(through, plain, atol=1e-4)
    assert not torch.allclose(fp8, plain, atol=1e-4)  # the fp8 read is not the full-precision one


def test_a_sweep_records_the_strategy_and_its_bytes(tmp_path) -> None:
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.jobs.matrix import CellFinished, run_matrix
    from ctxscope.core.spec import ModelSpec, SweepConfig
    from transformers import LlamaConfig

    path = tmp_path / "config.json"
    LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=256, max_position_embeddings=2048,
                architectures=["LlamaForCausalLM"]).to_json_file(str(path))
    spec = ModelSpec(str(path), device="cpu")
    cfg = SweepConfig(lengths=(256,), modes=("prefill", "decode"), min_repeats=1, max_repeats=2, budget_s=0.05)
    loads = []

    def loader(s):
        loads.append(s)
        return load_model(s)

    from ctxscope.core.jobs.matrix import ModelSlot

    events = list(run_matrix([spec, spec], cfg, slot=ModelSlot(loader), caches=("dynamic", "fp8")))
    runs = [e.result for e in events if isinstance(e, CellFinished)]
    assert len(loads) == 1  # one loaded copy, two strategies
    assert [r.header.settings.cache for r in runs] == ["dynamic", "fp8"]
    kv = [{p.mode: p.memory.kv_cache_bytes for p in r.points} for r in runs]
    for mode in ("prefill", "decode"):
        assert kv[1][mode] <= kv[0][mode] / 2
    assert np.isfinite([p.latency_ms.median for r in runs for p in r.points]).all()


def test_a_pending_quanto_build_is_said_once_before_the_first_point(tmp_path, monkeypatch, capsys) -> None:
    """optimum-quanto compiles its CPU kernel into its package on first use (about a
    minute): the check before a CPU int4 sweep says so, once, and not once it is built."""
    import importlib.machinery

    from ctxscope.core.measure import kv_cache

    package = tmp_path / "quanto"
    build = package / "library" / "extensions" / "cpp" / "build"
    build.mkdir(parents=True)
    spec = importlib.machinery.ModuleSpec("optimum.quanto", None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    monkeypatch.setattr(kv_cache.importlib.util, "find_spec", lambda name: spec)
    monkeypatch.setattr(kv_cache, "int_backend", lambda: "quanto")
    monkeypatch.setattr(kv_cache, "_told_build", False)
    assert kv_cache.quanto_cpu_build_pending()
    kv_cache._say_if_quanto_builds()
    kv_cache._say_if_quanto_builds()
    assert capsys.readouterr().err.count("building its CPU kernel once") == 1
    (build / "quanto_cpp.so").write_bytes(b"")
    assert not kv_cache.quanto_cpu_build_pending()
    monkeypatch.setattr(kv_cache, "int_backend", lambda: "hqq")
    (build / "quanto_cpp.so").unlink()
    assert not kv_cache.quanto_cpu_build_pending()  # hqq builds nothing
