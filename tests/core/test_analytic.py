"""The analytic model: exact presets, KV bytes equal to the measured cache for every
attention family, FLOPs against hand-worked cases, and `ctxscope estimate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig

from ctxscope.cli import main
from ctxscope.core.predict import analytic
from ctxscope.core.model.loading import load_model
from ctxscope.core.measure.measurer import Measurer
from ctxscope.core.model.presets import preset_path
from ctxscope.core.spec import ModelSpec
from tests.conftest import fast_config
from tests.core.test_attention import _configs


def arch_of(name: str) -> analytic.Architecture:
    return analytic.describe_config(AutoConfig.from_pretrained(str(preset_path(name))))


@pytest.mark.parametrize(("preset", "params", "kv_per_token"), [
    ("llama-3.1-8b", 8_030_261_248, 131_072), ("gpt2", 124_439_808, 36_864),
    ("llama-3.2-1b", 1_235_814_400, 32_768), ("qwen2.5-0.5b", 494_032_768, 12_288),
])
def test_presets_exact(preset: str, params: int, kv_per_token: int) -> None:
    arch = arch_of(preset)
    assert arch.params == params
    assert analytic.kv_bytes_per_token(arch, "bfloat16") == kv_per_token
    assert analytic.weights_bytes(arch, "bfloat16") == 2 * params


def test_windows_follow_transformers_caches() -> None:
    mistral, gemma2 = arch_of("mistral-7b-v0.1"), arch_of("gemma-2-2b")
    assert {layer.window for layer in mistral.kv_layers} == {4095}
    assert [layer.window for layer in gemma2.kv_layers[:4]] == [4095, None, 4095, None]
    per_token = analytic.kv_bytes_per_token(mistral, "bfloat16")
    assert analytic.kv_bytes(mistral, 32768, "bfloat16") == 4095 * per_token  # capped at the window


@pytest.mark.parametrize("family", ["llama", "gpt2", "mistral", "gemma2", "qwen2", "phi3"])
def test_analytic_kv_equals_the_measured_cache(family: str, tmp_path: Path) -> None:
    cfg = _configs()[family]
    path = tmp_path / "config.json"
    cfg.to_json_file(str(path))
    loaded = load_model(ModelSpec(str(path), device="cpu"))
    arch = analytic.describe_config(loaded.config)
    assert arch.params == loaded.info.params
    measurer = Measurer(loaded, fast_config((40,), min_repeats=1, max_repeats=1))
    # The storage held: a prefill's whole buffer (sliding layers keep a view of it), the
    # window (or L + 1) while decoding.
    point = measurer.measure("prefill", 40)
    assert point.memory.kv_cache_bytes == analytic.prefill_kv_storage_bytes(arch, 40, "float32"), family
    point = measurer.measure("decode", 40)
    assert point.memory.kv_cache_bytes == analytic.decode_kv_storage_bytes(arch, 40, "float32"), family


def test_flops_hand_worked() -> None:
    """Tiny Llama (hidden 64, MLP 128, 2 layers, 4 heads of 16, 2 KV heads, vocab 256,
    untied): body 74,048 params, embeddings and LM head 16,384 each."""
    arch = analytic.describe_config(_configs()["llama"])
    assert (arch.params, arch.embedding_params, arch.lm_head_matmul_params, arch.tied) == (106_816, 16_384, 16_384, False)
    # prefill L=10: 2·74,048·10 + 2·16,384 (one logit row) + 2 layers · 4·4·16 · 55 pairs
    assert analytic.prefill_flops(arch, 10) == 1_480_960 + 32_768 + 28_160
    # decode at depth 10: 2·(74,048 + 16,384) + 2 layers · 4·4·16 · 11 keys
    assert analytic.decode_flops(arch, 10) == 180_864 + 5_632
    assert analytic.prefill_flops(arch, 10, batch=3) == 3 * analytic.prefill_flops(arch, 10)


def test_window_pairs_brute_force() -> None:
    for length, window in ((10, 3), (50, 7), (5, 9)):
        brute = sum(min(q + 1, window + 1) for q in range(length))
        assert analytic._attended(length, window, causal=True) == brute
    assert analytic._attended(10, None, causal=False) == 100


def test_tied_lm_head_is_counted_once_for_params_but_computed() -> None:
    gpt2 = arch_of("gpt2")
    assert gpt2.tied and gpt2.params == 124_439_808
    body = gpt2.params - gpt2.embedding_params
    assert analytic.decode_flops(gpt2, 0) == pytest.approx(2 * (body + gpt2.lm_head_matmul_params)
                                                           + 12 * 4 * 12 * 64 * 1)


def test_estimate_cli(capsys) -> None:
    assert main(["estimate", "preset:llama-3.1-8b", "--dtype", "bfloat16", "--lengths", "1k,32k", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 8_030_261_248 and out["kv_bytes_per_token"] == 131_072
    assert [r["kv_cache_bytes"] for r in out["lengths"]] == [131_072 * 1024, 131_072 * 32768]
    assert main(["estimate", "preset:gemma-2-2b", "--lengths", "8k"]) == 0
    assert "sliding windows keep [4095]" in capsys.readouterr().out


def test_estimate_predicts_what_a_sweep_here_would_run(capsys) -> None:
    """--dtype auto resolves as a sweep does: float32 for this CPU, a half type for a GPU;
    lengths past the model's positions are marked, not silently predicted."""
    import torch

    assert main(["estimate", "preset:gpt2", "--lengths", "1k,2k", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dtype"] == ("bfloat16" if torch.cuda.is_available() else "float32")
    assert out["max_positions"] == 1024
    assert [r["beyond_max_positions"] for r in out["lengths"]] == [False, True]
    assert main(["estimate", "preset:gpt2", "--gpu", "H100 SXM", "--lengths", "1k", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["dtype"] in ("bfloat16", "float16")
    assert main(["estimate", "preset:gpt2", "--lengths", "1k,2k"]) == 0
    assert "beyond the model's 1024 positions" in capsys.readouterr().out


def test_estimate_counts_the_batch_once(capsys) -> None:
    """The rows are per batch already: a batch of 4 is 4× the prefill work, and a decode
    step reads the weights once plus 4 caches (it was batch² and 4 + 16 caches)."""
    rows = {}
    for batch in (1, 4):
        assert main(["estimate", "preset:llama-3.1-8b", "--gpu", "H100 SXM", "--dtype", "bfloat16", "--lengths", "8k",
                     "--batch", str(batch), "--format", "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        rows[batch] = (out["lengths"][0], out["weights_bytes"], out["peak"])
    (one, weights, peak), (four, _, _) = rows[1], rows[4]
    assert four["prefill_flops"] == 4 * one["prefill_flops"]
    compute_ms = four["prefill_flops"] / peak["flops"]["bfloat16"] * 1e3
    assert four["predicted_prefill_ms"] == pytest.approx(compute_ms)  # 4 × 8k tokens: compute-bound
    assert four["predicted_prefill_ms"] == pytest.approx(4 * one["predicted_prefill_ms"], rel=0.01)
    kv = four["kv_cache_bytes"]  # four caches of 8k tokens
    assert kv == 4 * one["kv_cache_bytes"]
    assert four["predicted_decode_ms"] == pytest.approx(max((weights + kv) / peak["bytes_per_s"],
                                                            four["decode_flops"] / peak["flops"]["bfloat16"]) * 1e3)


@pytest.mark.parametrize(("argv", "message"), [
    (["estimate", "preset:nope"], "unknown preset"),
    (["estimate", "preset:gpt2", "--lengths", "0"], "positive"),
    (["estimate", "preset:gpt2", "--batch", "0"], "--batch"),
    (["estimate", "preset:gpt2", "--dtype", "int3"], "invalid choice"),
])
def test_estimate_bad_input(capsys, argv: list[str], message: str) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_encoder_decoder_is_refused(capsys, tmp_path: Path) -> None:
    from transformers import T5Config

    path = tmp_path / "config.json"
    T5Config(d_model=32, num_layers=1, num_heads=2, d_ff=64, vocab_size=100).to_json_file(str(path))
    assert main(["estimate", str(path)]) == 2
    assert "encoder-decoder" in capsys.readouterr().err


def test_decode_traffic_counts_the_cache_update() -> None:
    """A dynamic cache's step concatenates: it reads the old cache and writes the new
    one besides attention reading it — bandwidth utilisation must count all of it."""
    arch = analytic.describe_config(_configs()["llama"])
    per_token = analytic.kv_bytes_per_token(arch, "float32")
    weights = analytic.weights_bytes(arch, "float32")
    depth = 1000
    dynamic = analytic.decode_traffic_bytes(arch, depth, "float32", cache="dynamic")
    static = analytic.decode_traffic_bytes(arch, depth, "float32", cache="static")
    assert dynamic == weights + (depth + 1) * per_token + (depth + 1) * per_token + depth * per_token
    assert static == weights + (depth + 1) * per_token + per_token
    assert analytic.decode_bytes(arch, depth, "float32") < static < dynamic


def test_sliding_window_memory_is_predicted_as_stored(tmp_path: Path) -> None:
    """Mistral's sliding layers keep the whole prefill buffer: the prediction the
    departure check uses is the storage, so a correct measurement is not flagged."""
    from ctxscope.core.predict.efficiency import point_efficiency
    from ctxscope.core.jobs.sweep import run_sweep
    from tests.conftest import drain

    cfg = _configs()["mistral"]
    path = tmp_path / "config.json"
    cfg.to_json_file(str(path))
    loaded = load_model(ModelSpec(str(path), device="cpu"))
    _, run = drain(run_sweep(loaded, fast_config((64, 128))))
    rows = {r["length"]: r for r in run.header.analytic["rows"]}
    for p in run.points:
        key = "prefill_kv_storage_bytes" if p.mode == "prefill" else "decode_kv_storage_bytes"
        assert p.memory.kv_cache_bytes == rows[p.length][key], (p.mode, p.length)
        assert point_efficiency(run, p).memory_departure is None, (p.mode, p.length)
