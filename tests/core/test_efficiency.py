"""Prediction against measurement: the GPU peak table, the probe, roofline latency,
MFU / bandwidth utilisation, memory departure flags and the a + bL + cL² fit."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from ctxscope.cli import main
from ctxscope.core.predict.efficiency import fit_latency, point_efficiency, predicted_ms
from ctxscope.core.machine.hardware import Peak, from_table, peak_for, save_probe
from ctxscope.core.results import MemoryStats
from tests.report.test_reports import make_run


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"), ("NVIDIA A100-SXM4-40GB", "A100 40GB SXM"),
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"), ("NVIDIA A100-PCIE-40GB", "A100 40GB PCIe"), ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"), ("NVIDIA A10G", "A10G"), ("NVIDIA A10", "A10"), ("Tesla T4", "T4"),
    ("Tesla V100-SXM2-32GB", "V100 SXM2"), ("NVIDIA GeForce RTX 3090", "GeForce RTX 3090"),
    ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"), ("H100 SXM", "H100 SXM"),
])
def test_peak_table_matches_device_names(name: str, expected: str) -> None:
    assert from_table(name).name == expected


def test_peak_table_values_and_unknowns() -> None:
    h100 = from_table("NVIDIA H100 80GB HBM3")
    assert h100.flops_for("bfloat16") == pytest.approx(989.4e12) and h100.bytes_per_s == pytest.approx(3.35e12)
    assert from_table("Tesla T4").flops_for("bfloat16") is None  # no bf16 tensor cores
    assert from_table("AMD Instinct MI300X") is None and from_table(None) is None


def test_a_saved_probe_wins_over_the_data_sheet() -> None:
    name = "NVIDIA H100 80GB HBM3"
    save_probe(Peak(name=name, flops={"bfloat16": 700e12}, bytes_per_s=3.0e12, source="probe 2026-11-23 (cuda:0)"))
    peak = peak_for(name)
    assert peak.source.startswith("probe") and peak.flops_for("bfloat16") == 700e12
    assert peak_for("NVIDIA L4").source.startswith("table")


def test_cpu_probe_measures_something(capsys) -> None:
    from ctxscope.core.machine.peak_probe import probe

    peak = probe("cpu", dtypes=("float32",), seconds=0.2)
    assert peak.flops_for("float32") > 1e8 and peak.bytes_per_s > 1e8 and peak.source.startswith("probe")
    assert main(["env", "--probe", "--format", "json"]) == 0
    [cpu] = [d for d in json.loads(capsys.readouterr().out)["devices"] if d["device"] == "cpu"]
    assert cpu["peak"]["source"].startswith("probe") and cpu["peak"]["flops"]["float32"] > 0


ANALYTIC = {"weights_bytes": 1_000_000_000, "rows": [
    {"length": 1024, "kv_cache_bytes": 100_000_000, "prefill_flops": 2e12, "decode_flops": 2e9,
     "decode_bytes": 1_100_000_000}],
    "peak": {"name": "X", "flops": {"float16": 100e12}, "bytes_per_s": 1e12, "source": "table"}}


def test_roofline_prediction_by_hand() -> None:
    # prefill: compute 2e12 / 1e14 = 20 ms; memory (1e9 + 1e8) / 1e12 = 1.1 ms → 20 ms.
    assert predicted_ms(ANALYTIC, "float16", "prefill", 1024) == pytest.approx(20.0)
    # decode: compute 2e9 / 1e14 = 0.02 ms; memory 1.1e9 / 1e12 = 1.1 ms → 1.1 ms.
    assert predicted_ms(ANALYTIC, "float16", "decode", 1024) == pytest.approx(1.1)
    assert predicted_ms(ANALYTIC, "bfloat16", "prefill", 1024) is None  # no peak for that dtype
    assert predicted_ms(ANALYTIC, "float16", "prefill", 2048) is None  # length not predicted


def test_point_efficiency_mfu_bandwidth_and_departure() -> None:
    run = make_run("a1", lengths=(1024,))
    run = replace(run, header=replace(run.header, analytic=ANALYTIC))
    prefill, decode = run.points  # median 1 ms and 0.01 ms
    eff = point_efficiency(run, prefill)
    assert eff.mfu == pytest.approx(2e12 / 1e-3 / 100e12)  # 20× the peak: the made-up run is impossibly fast
    assert eff.bandwidth_util is None and eff.predicted_ms == pytest.approx(20.0)
    eff = point_efficiency(run, decode)
    assert eff.bandwidth_util == pytest.approx(1.1e9 / 1e-5 / 1e12) and eff.mfu is None
    # Measured weights + KV: 250 MB + 36,864·1024 vs predicted 1.1 GB → far below: flagged.
    assert eff.predicted_memory_bytes == 1_100_000_000 and eff.memory_departure < -0.1
    close = replace(prefill, memory=MemoryStats(weights_bytes=1_000_000_000, kv_cache_bytes=130_000_000,
                                                activation_bytes=0))
    assert point_efficiency(run, close).memory_departure is None  # +2.7%: within 10%


def test_fit_recovers_a_quadratic_and_its_crossover() -> None:
    lengths = [512, 1024, 2048, 4096, 8192, 16384]
    fit = fit_latency(lengths, [5 + 0.01 * n + 1e-6 * n * n for n in lengths])
    assert (fit.a, fit.b, fit.c) == pytest.approx((5, 0.01, 1e-6), rel=1e-6)
    assert fit.crossover == pytest.approx(10_000) and fit.r2 == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = fit_latency(lengths, [(5 + 0.01 * n + 1e-6 * n * n) * (1 + 0.02 * rng.standard_normal()) for n in lengths])
    assert noisy.crossover == pytest.approx(10_000, rel=0.5) and noisy.r2 > 0.99
    linear = fit_latency(lengths, [3 + 0.02 * n for n in lengths])
    assert linear.crossover is None or linear.crossover > 1e6  # c ≈ 0: attention never dominates in range
    assert fit_latency([1, 2], [1.0, 2.0]) is None


def test_sweep_header_carries_the_analytic_model(loaded_llama) -> None:
    from ctxscope.core.jobs.sweep import run_sweep
    from tests.conftest import drain, fast_config

    _, run = drain(run_sweep(loaded_llama, fast_config((32, 64), modes=("prefill", "decode"))))
    analytic = run.header.analytic
    assert [r["length"] for r in analytic["rows"]] == [32, 64]
    for p in run.points:
        row = next(r for r in analytic["rows"] if r["length"] == p.length)
        if p.mode == "prefill":
            assert p.memory.kv_cache_bytes == row["kv_cache_bytes"]  # measured cache = predicted
        eff = point_efficiency(run, p)
        assert eff.memory_departure is None, (p, eff)
    assert analytic["weights_bytes"] > 0 and analytic["params"] == run.header.model.params


def test_estimate_predicts_latency_for_a_named_gpu(capsys) -> None:
    assert main(["estimate", "preset:llama-3.1-8b", "--gpu", "H100 SXM", "--lengths", "1k", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    [row] = out["lengths"]
    assert row["predicted_prefill_ms"] == pytest.approx(row["prefill_flops"] / 989.4e12 * 1e3)
    assert row["predicted_decode_ms"] == pytest.approx(row["decode_bytes"] / 3.35e12 * 1e3)
    assert main(["estimate", "preset:gpt2", "--gpu", "B300"]) == 2
    assert "not in the table" in capsys.readouterr().err
