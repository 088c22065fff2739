"""GPU-only behaviour: CUDA-event timing, allocator peaks, NVML, real OOM, bf16.

Skipped without CUDA; run on a GPU machine with ``pytest -m gpu tests/gpu``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ctxscope.core.loading import load_model
from ctxscope.core.measure import Measurer
from ctxscope.core.spec import ModelSpec
from ctxscope.core.sweep import run_sweep
from tests.conftest import drain, fast_config

pytestmark = pytest.mark.gpu


def test_cuda_sweep_uses_events_and_allocator_peaks(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cuda", dtype="bfloat16"))
    _, run = drain(run_sweep(loaded, fast_config((64, 256))))
    assert run.header.settings.timer == "cuda_event" and run.header.environment.gpu_name
    info = run.header.model
    for p in run.points:
        mem = p.memory
        assert p.status == "ok" and mem.peak_allocated_bytes >= mem.weights_bytes + mem.kv_cache_bytes
        assert mem.kv_cache_bytes == 2 * info.num_layers * info.num_kv_heads * info.head_dim * p.length * 2
        assert mem.activation_bytes == mem.peak_allocated_bytes - mem.weights_bytes - mem.kv_cache_bytes
        assert mem.peak_reserved_bytes >= mem.peak_allocated_bytes
        assert mem.device_used_bytes is None or mem.device_used_bytes >= mem.peak_reserved_bytes


def test_preset_builds_on_gpu_with_finite_logits() -> None:
    loaded = load_model(ModelSpec("preset:llama-3.2-1b", device="cuda", dtype="bfloat16"))
    assert next(loaded.model.parameters()).device.type == "cuda"
    ids = torch.randint(3, 1000, (1, 64), device="cuda")
    with torch.inference_mode():
        assert torch.isfinite(loaded.model(input_ids=ids, logits_to_keep=1).logits).all()


def test_real_oom_is_a_point_and_the_model_survives(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cuda"))
    free, _ = torch.cuda.mem_get_info()
    # A batch whose activations cannot fit: the sweep records OOM and carries on.
    huge_batch = int(free // (512 * 64 * 4 * 8)) + 1
    cfg = fast_config((512,), modes=("prefill",), batch_size=huge_batch, allow_beyond_max=True)
    _, run = drain(run_sweep(loaded, cfg))
    assert run.points[0].status == "oom" and run.status == "complete"
    before = torch.cuda.memory_allocated()
    _, again = drain(run_sweep(loaded, fast_config((64,))))
    assert all(p.status == "ok" for p in again.points)
    assert torch.cuda.memory_allocated() <= before + (1 << 20)


def test_telemetry_reads_nvml() -> None:
    from ctxscope.core import nvml
    from ctxscope.core.telemetry import TelemetrySampler

    if nvml.nvml() is None:
        pytest.skip("no NVML on this machine")
    sample = TelemetrySampler(device_index=0).sample(0.0)
    assert sample.gpu_memory_total_bytes and sample.gpu_memory_used_bytes is not None
    assert sample.temperature_c is None or 0 < sample.temperature_c < 120


def test_event_timing_matches_wall_clock_for_long_calls(tiny_config_files: dict[str, Path]) -> None:
    import time

    from ctxscope.core.timing import CallTimer

    timer = CallTimer(torch.device("cuda"))
    a = torch.randn(4096, 4096, device="cuda")
    timer.time(lambda: a @ a)
    t0 = time.perf_counter()
    ms, _ = timer.time(lambda: [a @ a for _ in range(20)])
    wall = (time.perf_counter() - t0) * 1e3
    assert 0.8 * wall <= ms <= wall * 1.01


def test_measurer_on_gpu_keeps_exact_lengths(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["mistral"]), device="cuda"))
    m = Measurer(loaded, fast_config((100,)))
    m.measure("decode", 100)
    assert ("decode-prefill", (1, 100)) in m.seen_shapes


def test_probe_is_close_to_the_data_sheet() -> None:
    """The measured matmul rate and copy bandwidth are real fractions of the data sheet's
    (a probe above the sheet, or a tiny fraction of it, means the probe is wrong)."""
    from ctxscope.core.hardware import from_table, probe

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
    from ctxscope.core.efficiency import point_efficiency

    loaded = load_model(ModelSpec("preset:llama-3.2-1b", device="cuda", dtype="bfloat16"))
    _, run = drain(run_sweep(loaded, fast_config((1024, 4096), min_repeats=5, max_repeats=20, budget_s=1.0)))
    if run.header.analytic.get("peak") is None:
        pytest.skip("no peak figures for this GPU")
    for p in run.points:
        eff = point_efficiency(run, p)
        assert eff.predicted_ms is not None and p.latency_ms.median >= eff.predicted_ms, (p.mode, p.length)
        util = eff.mfu if eff.mfu is not None else eff.bandwidth_util
        assert util is not None and 0 < util < 1, (p.mode, p.length, util)
        assert eff.memory_departure is None, (p.mode, p.length, eff)
