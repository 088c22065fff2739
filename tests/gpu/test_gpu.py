"""GPU-only behaviour checked against independent facts: a deterministic out-of-memory
and the memory it gives back, the max-context answer a sweep can really run, sliding
windows that keep decode memory flat, NVML's UUID against torch's, capture against
eager on CUDA, refusals before any CUDA call, two GPUs under a device map.

Skipped without CUDA; run on a GPU machine with ``pytest -m gpu tests/gpu`` (or
``bash bench/gpu_check.sh``, which runs these and the GPU benches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ctxscope.core.errors import BadInputError
from ctxscope.core.model.loading import load_model
from ctxscope.core.spec import ModelSpec
from ctxscope.core.jobs.sweep import drive, run_sweep
from tests.conftest import drain, fast_config

pytestmark = pytest.mark.gpu


def test_cuda_sweep_uses_events_and_the_split_adds_up(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cuda", dtype="bfloat16"))
    _, run = drain(run_sweep(loaded, fast_config((64, 256))))
    assert run.header.settings.timer == "cuda_event" and run.header.environment.gpu_name
    info = run.header.model
    for p in run.points:
        mem = p.memory
        assert p.status == "ok" and mem.accounting_note is None, mem
        stored = p.length + (p.mode == "decode")
        assert mem.kv_cache_bytes == 2 * info.num_layers * info.num_kv_heads * info.head_dim * stored * 2
        # The allocator's own figures, not the split's formula: the parts sum to its peak.
        assert mem.weights_bytes + mem.kv_cache_bytes + mem.activation_bytes + mem.other_bytes == mem.peak_allocated_bytes
        assert mem.peak_reserved_bytes >= mem.peak_allocated_bytes
        assert mem.device_used_bytes is None or mem.device_used_bytes >= mem.peak_reserved_bytes


def test_a_deterministic_oom_is_data_and_memory_comes_back(tiny_config_files: dict[str, Path]) -> None:
    """fp32 eager attention materialises batch·heads·L² scores: pick L so that one
    layer's scores alone exceed the free memory. The point is `oom`, the sweep completes,
    and allocated memory returns to its baseline within 1%."""
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cuda", dtype="float32",
                                  attn_implementation="eager"))
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    free, _ = torch.cuda.mem_get_info()
    batch, heads = 64, loaded.info.num_heads
    length = int(np.sqrt(2 * free / (batch * heads * 4))) + 1  # scores alone: twice the free memory
    cfg = fast_config((length,), modes=("prefill",), batch_size=batch, allow_beyond_max=True, force=True)
    _, run = drain(run_sweep(loaded, cfg))
    assert run.status == "complete" and run.points[0].status == "oom", run.points[0]
    torch.cuda.synchronize()
    assert abs(torch.cuda.memory_allocated() - baseline) <= 0.01 * baseline + (1 << 20)
    _, again = drain(run_sweep(loaded, fast_config((64,))))
    assert all(p.status == "ok" for p in again.points)


def test_the_max_context_answer_runs_in_a_sweep() -> None:
    """maxctx probes what the sweep measures: the length it finds is a length a sweep
    then measures without running out of memory, under the same budget."""
    from ctxscope.core.maxctx.run import find_max_context

    loaded = load_model(ModelSpec("preset:qwen2.5-0.5b", device="cuda", dtype="bfloat16", attn_implementation="eager"))
    budget = torch.cuda.memory_reserved() + 6 * 2**30  # weights + 6 GiB: eager's L² scores hit it fast
    answer = drive(find_max_context(loaded, mode="prefill", budget=budget, granularity=512), lambda p: None)
    assert answer.largest_fit is not None and not answer.stopped_at_limit
    torch.cuda.set_per_process_memory_fraction(budget / torch.cuda.get_device_properties(0).total_memory)
    try:
        _, run = drain(run_sweep(loaded, fast_config((answer.largest_fit,), modes=("prefill",), min_repeats=1,
                                                     max_repeats=2)))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert run.points[0].status == "ok", run.points[0]


def test_sliding_window_decode_memory_is_flat_in_length(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["mistral"]), device="cuda", dtype="bfloat16"))
    _, run = drain(run_sweep(loaded, fast_config((256, 4096), modes=("decode",), allow_beyond_max=True)))
    short, long = (p.memory for p in run.points)
    assert short.kv_cache_bytes == long.kv_cache_bytes  # the window, whatever the depth
    assert long.activation_bytes <= short.activation_bytes + (1 << 20)


def test_nvml_names_the_same_gpu_as_torch() -> None:
    from ctxscope.core.machine import nvml

    if nvml.nvml() is None:
        pytest.skip("no NVML on this machine")
    for index in range(torch.cuda.device_count()):
        uuid = nvml.torch_uuid(index)
        handle = nvml.handle(uuid)
        assert handle is not None
        reported = nvml.nvml().nvmlDeviceGetUUID(handle)
        reported = reported.decode() if isinstance(reported, bytes) else reported
        assert nvml.normalize_uuid(reported) == uuid
        free, total = nvml.memory_info(uuid)
        assert total == pytest.approx(torch.cuda.get_device_properties(index).total_memory, rel=0.02)


def test_telemetry_reads_this_process_on_the_model_gpu(tiny_config_files: dict[str, Path]) -> None:
    from ctxscope.core.machine import nvml
    from ctxscope.core.machine.telemetry import TelemetrySampler

    if nvml.nvml() is None:
        pytest.skip("no NVML on this machine")
    load_model(ModelSpec(str(tiny_config_files["llama"]), device="cuda"))
    sample = TelemetrySampler(hz=0, uuids=(nvml.torch_uuid(0),)).sample()
    assert sample.gpu_memory_total_bytes and sample.gpu_memory_used_bytes
    assert sample.process_memory_bytes and sample.process_memory_bytes >= torch.cuda.memory_reserved()
    assert sample.temperature_c is None or 0 < sample.temperature_c < 120


def test_capture_on_cuda_equals_eager(tiny_config_files: dict[str, Path]) -> None:
    from ctxscope.core.attention import CaptureConfig, capture

    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cuda", dtype="float32",
                                  attn_implementation="eager"))
    ids = torch.randint(3, 256, (1, 64), device="cuda")
    cap = capture(loaded, ids, CaptureConfig(tiles=64))
    with torch.inference_mode():
        eager = loaded.model(input_ids=ids, output_attentions=True).attentions
    for layer in cap.layers:
        reference = eager[layer.layer][0].float().cpu().numpy()  # [heads, L, L]: tiles of one token
        np.testing.assert_allclose(layer.maps, reference, atol=1e-5)


def test_learned_positions_are_refused_before_any_cuda_call(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["gpt2"]), device="cuda"))
    with pytest.raises(BadInputError, match="learned table"):
        next(run_sweep(loaded, fast_config((512,), allow_beyond_max=True)))
    # The context is still healthy: a CUDA call works.
    assert float((torch.ones(4, device="cuda") * 2).sum()) == 8.0


def test_event_timing_matches_wall_clock_for_long_calls() -> None:
    import time

    from ctxscope.core.measure.timing import CallTimer

    timer = CallTimer(torch.device("cuda"))
    a = torch.randn(4096, 4096, device="cuda")
    timer.time(lambda: a @ a)
    t0 = time.perf_counter()
    ms, _ = timer.time(lambda: [a @ a for _ in range(20)])
    wall = (time.perf_counter() - t0) * 1e3
    assert 0.8 * wall <= ms <= wall * 1.01


def test_probe_is_close_to_the_data_sheet() -> None:
    """The measured matmul rate and copy bandwidth are real fractions of the data sheet's
    (a probe above the sheet, or a tiny fraction of it, means the probe is wrong)."""
    from ctxscope.core.machine.hardware import from_table
    from ctxscope.core.machine.peak_probe import probe

    name = torch.cuda.get_device_name(0)
    sheet = from_table(name)
    measured = probe("cuda:0", dtypes=("bfloat16",), seconds=1.0)
    assert measured.flops_for("bfloat16") > 1e12 and measured.bytes_per_s > 1e11
    if sheet is None:
        pytest.skip(f"{name} is not in the data-sheet table")
    assert 0.2 < measured.flops_for("bfloat16") / sheet.flops_for("bfloat16") < 1.1
    assert 0.3 < measured.bytes_per_s / sheet.bytes_per_s < 1.1


def test_measured_latency_respects_the_roofline_bound() -> None:
    """A preset in bf16: every measured median is above the analytic lower bound and
    MFU / bandwidth utilisation stay below 1 (else the FLOP or byte count is wrong)."""
    from ctxscope.core.predict.efficiency import point_efficiency

    loaded = load_model(ModelSpec("preset:llama-3.2-1b", device="cuda", dtype="bfloat16"))
    _, run = drain(run_sweep(loaded, fast_config((1024, 4096), min_repeats=5, max_repeats=20, budget_s=1.0)))
    if run.header.analytic.get("peak") is None:
        pytest.skip("no peak figures for this GPU")
    for p in run.points:
        eff = point_efficiency(run, p)
        assert eff.predicted_ms is not None and p.latency_ms.median >= eff.predicted_ms, (p.mode, p.length)
        util = eff.mfu if eff.mfu is not None else eff.bandwidth_util
        assert util is not None and 0 < util < 1, (p.mode, p.length, util)


def test_two_gpus_under_a_device_map(tiny_checkpoint: Path) -> None:
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    from ctxscope.core.measure.memory import model_devices

    loaded = load_model(ModelSpec(str(tiny_checkpoint), device="cuda", device_map="auto"))
    if len(model_devices(loaded.model)) < 2:
        pytest.skip("accelerate put the tiny model on one GPU")
    _, run = drain(run_sweep(loaded, fast_config((64,))))
    assert all(p.status == "ok" for p in run.points) and run.header.settings.timer == "perf_counter+sync"
