"""KV-cache strategies on a GPU: what ``--cache offload`` keeps on the host and moves per
token, and fp8's storage on CUDA. Never run on the development VM (no CUDA there): the
first GPU session runs these through ``bash bench/gpu_check.sh``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxscope.core.jobs.sweep import run_sweep
from ctxscope.core.model.loading import load_model
from ctxscope.core.spec import ModelSpec
from tests.conftest import drain, fast_config

pytestmark = pytest.mark.gpu


def test_offload_keeps_all_but_the_prefetched_layer_on_the_host_and_moves_each_layer_twice(
        tiny_config_files: dict[str, Path]) -> None:
    """transformers' offloaded cache: during a step each layer is brought to the device
    (the next one prefetched while this one runs) and sent back after its update; the
    first layer is prefetched again at the end. So after a step all but one layer sit in
    host memory, and a step moves about twice the cache (in, then out)."""
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cuda", dtype="bfloat16"))
    info = loaded.info
    length = 256
    _, dyn = drain(run_sweep(loaded, fast_config((length,), modes=("decode",))))
    _, off = drain(run_sweep(loaded, fast_config((length,), modes=("decode",), cache="offload")))
    (d,), (o,) = dyn.points, off.points
    assert d.status == o.status == "ok", (d, o)
    whole = 2 * info.num_layers * info.num_kv_heads * info.head_dim * (length + 1) * 2
    assert d.memory.kv_cache_bytes == o.memory.kv_cache_bytes == whole
    layer = whole // info.num_layers
    assert o.memory.kv_host_bytes == whole - layer, o.memory
    assert 1.95 * whole <= o.memory.kv_traffic_bytes <= 2.05 * whole, o.memory
    mem = o.memory  # the split counted the device share only: the parts still add up to the device's peak
    assert mem.weights_bytes + (mem.kv_cache_bytes - mem.kv_host_bytes) + mem.activation_bytes + mem.other_bytes \
        == mem.peak_allocated_bytes
    assert "host memory" in (mem.accounting_note or "")


def test_fp8_holds_half_a_bfloat16_cache_on_cuda(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cuda", dtype="bfloat16"))
    _, dyn = drain(run_sweep(loaded, fast_config((256,), modes=("decode",))))
    _, fp8 = drain(run_sweep(loaded, fast_config((256,), modes=("decode",), cache="fp8")))
    (d,), (f,) = dyn.points, fp8.points
    assert d.status == f.status == "ok", (d, f)
    # float8 keys and values (1 byte against bfloat16's 2) plus a float32 scale per layer tensor;
    # the residual: the newest token is full precision until the next flush.
    assert f.memory.kv_cache_bytes <= 0.55 * d.memory.kv_cache_bytes, (f.memory, d.memory)
    assert f.memory.kv_cache_bytes >= 0.5 * d.memory.kv_cache_bytes * 256 / 257
