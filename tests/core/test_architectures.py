"""Every decoder family that changes what context costs, measured right: layer kinds read
from the architecture, decode at depth equal to a full recompute (the rollback restores
recurrent state as well as KV), KV and recurrent state counted from storage and equal to
the analytic model's, and mixture-of-experts active parameters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from ctxscope.core.predict import analytic
from ctxscope.core.measure.cache_storage import cache_bytes, state_bytes
from ctxscope.core.model.compat import cache_kwargs
from ctxscope.core.model.loading import load_model
from ctxscope.core.measure.rollback import CacheRollback, attention_depth
from ctxscope.core.spec import ModelSpec
from ctxscope.core.jobs.sweep import run_sweep
from tests.conftest import drain, fast_config
from tests.core.families import FAMILIES, KINDS, family_config, write_family

#: transformers' own incremental path for Bamba differs from its full path by 1–6e-3 in
#: the logits (seen with no rollback at all: the first step after a plain prefill, with the
#: attention layer anywhere or nowhere; Granite-4.0-H, whose Mamba mixer is the same code,
#: agrees to 1e-4). The rollback itself is exact — steps repeat bit for bit — which is
#: asserted for every family.
TOLERANCE = {"bamba": 1e-2}


@pytest.fixture(scope="module")
def family_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: write_family(name, root) for name in FAMILIES}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_layer_kinds_from_the_architecture(name: str) -> None:
    arch = analytic.describe_config(family_config(name))
    assert arch.layer_kinds == KINDS[name]
    attention = sum(k in ("full_attention", "sliding_attention", "hybrid") for k in KINDS[name])
    stateful = sum(k in ("mamba", "linear_attention", "conv", "hybrid") for k in KINDS[name])
    assert (len(arch.kv_layers), len(arch.state_layers)) == (attention, stateful)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_decode_at_depth_equals_a_full_recompute(family_files: dict[str, Path], name: str) -> None:
    """The cache built as a decode point builds it (a prefill of L − 2, two steps), then
    three timed-style steps, each restored by the rollback: every step's logits equal a
    forward over all L + 1 tokens, and the steps equal each other exactly."""
    loaded = load_model(ModelSpec(str(family_files[name]), device="cpu"))
    model = loaded.model
    from transformers import DynamicCache

    torch.manual_seed(1)
    depth = 40
    ids = torch.randint(3, 256, (1, depth + 1))
    with torch.inference_mode():
        reference = model(input_ids=ids).logits[:, -1]
        cache = DynamicCache(config=model.config)
        model(input_ids=ids[:, :depth - 2], use_cache=True, **cache_kwargs(model, cache))
        for i in (depth - 2, depth - 1):
            model(input_ids=ids[:, i:i + 1], use_cache=True, **cache_kwargs(model, cache))
        rollback = CacheRollback(cache)
        held = (cache_bytes(cache), state_bytes(cache))
        steps = []
        for _ in range(3):
            steps.append(model(input_ids=ids[:, depth:], use_cache=True, **cache_kwargs(model, cache)).logits[:, -1])
            rollback()
            assert attention_depth(cache) in (None, depth)
            assert (cache_bytes(cache), state_bytes(cache)) == held
    tol = TOLERANCE.get(name, 1e-4)
    torch.testing.assert_close(steps[0], reference, atol=tol, rtol=tol)
    for step in steps[1:]:
        assert torch.equal(step, steps[0])  # the rollback restored the state exactly


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_sweep_measures_kv_and_state_as_the_analytic_model_predicts(family_files: dict[str, Path], name: str) -> None:
    loaded = load_model(ModelSpec(str(family_files[name]), device="cpu"))
    arch = analytic.describe_config(loaded.config)
    _, run = drain(run_sweep(loaded, fast_config((40, 96))))
    assert [p.status for p in run.points] == ["ok"] * 4, [(p.mode, p.length, p.error) for p in run.points]
    state = analytic.state_bytes(arch, "float32")
    for p in run.points:
        expected = (analytic.prefill_kv_storage_bytes(arch, p.length, "float32") if p.mode == "prefill"
                    else analytic.decode_kv_storage_bytes(arch, p.length, "float32"))
        assert p.memory.kv_cache_bytes == expected, (p.mode, p.length)
        assert (p.memory.state_bytes or 0) == state, (p.mode, p.length)
        assert p.memory.activation_bytes is not None and p.memory.activation_bytes > 0  # the CPU allocator's
    if state:  # fixed in L
        assert len({p.memory.state_bytes for p in run.points}) == 1
    if not any(k in ("full_attention", "sliding_attention", "hybrid") for k in arch.layer_kinds):
        assert all(p.memory.kv_cache_bytes == 0 for p in run.points)  # a pure state-space model holds no KV


def test_mamba2_state_is_the_conv_and_ssm_state_of_each_layer() -> None:
    """Mamba-2 by hand: conv state (d_inner + 2·groups·d_state) × kernel, SSM state
    heads × head_dim × d_state (kept in float32 by the reference kernel) per layer."""
    f = FAMILIES["mamba2"]
    d_inner = f["expand"] * f["hidden_size"]
    conv = (d_inner + 2 * f["n_groups"] * f["state_size"]) * f["conv_kernel"]
    ssm = f["num_heads"] * f["head_dim"] * f["state_size"]
    arch = analytic.describe_config(family_config("mamba2"))
    assert analytic.state_bytes(arch, "bfloat16") == f["num_hidden_layers"] * (2 * conv + 4 * ssm)
    assert analytic.state_bytes(arch, "float32") == f["num_hidden_layers"] * 4 * (conv + ssm)
    assert analytic.kv_bytes_per_token(arch, "bfloat16") == 0


def test_qwen3_next_kv_is_the_full_attention_layers_only() -> None:
    """One full-attention layer in four: KV per token = 2 · kv_heads · head_dim · bytes of
    that layer alone (it was counted on every layer before)."""
    f = FAMILIES["qwen3_next"]
    arch = analytic.describe_config(family_config("qwen3_next"))
    assert analytic.kv_bytes_per_token(arch, "float32") == 2 * f["num_key_value_heads"] * f["head_dim"] * 4
    assert analytic.kv_bytes(arch, 1024, "float32") == 1024 * 2 * 2 * 16 * 4  # 256 KiB


def test_moe_active_parameters_count_top_k_of_the_experts() -> None:
    """Qwen3-MoE: 4 experts, 2 per token; each layer's experts are gate_up (E × 2I × H)
    and down (E × H × I)."""
    f = FAMILIES["qwen3_moe"]
    e, k, h, i = f["num_experts"], f["num_experts_per_tok"], f["hidden_size"], f["moe_intermediate_size"]
    experts = f["num_hidden_layers"] * (e * 2 * i * h + e * h * i)
    arch = analytic.describe_config(family_config("qwen3_moe"))
    assert arch.experts is not None and arch.experts.expert_params == experts
    assert arch.active_params == arch.params - experts + experts * k // e
    # FLOPs by the active experts; a decode step reads only the experts one token chose.
    as_if_dense = dataclasses.replace(arch, experts=None)  # every expert running, as before
    saved = analytic.prefill_flops(as_if_dense, 128) - analytic.prefill_flops(arch, 128)
    assert saved == pytest.approx(2.0 * (arch.params - arch.active_params) * 128)
    assert analytic.decode_weight_bytes(arch, "float32") == 4 * arch.active_params
    assert analytic.decode_weight_bytes(arch, "float32", batch=8) == 4 * arch.params  # 8 tokens touch all 4


def test_dense_models_have_no_experts() -> None:
    arch = analytic.describe_config(family_config("gemma3_text"))
    assert arch.experts is None and arch.active_params == arch.params and not arch.state_layers


@pytest.mark.parametrize("name", ["mamba2", "qwen3_next", "lfm2"])
def test_estimate_describes_state_space_and_hybrid_configs(family_files: dict[str, Path], name: str, capsys) -> None:
    """`ctxscope estimate` refused a Mamba-2 config ('no attribute num_attention_heads')
    and counted every Qwen3-Next layer as full attention."""
    import json

    from ctxscope.cli import main

    assert main(["estimate", str(family_files[name]), "--lengths", "256,1024", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    arch = analytic.describe_config(family_config(name))
    assert result["state_bytes"] == analytic.state_bytes(arch, "float32") > 0
    assert [r["kv_cache_bytes"] for r in result["lengths"]] == [analytic.kv_bytes(arch, n, "float32")
                                                               for n in (256, 1024)]
    assert main(["estimate", str(family_files[name]), "--lengths", "1024"]) == 0
    assert "recurrent state" in capsys.readouterr().out


def test_a_run_says_when_recurrent_layers_ran_the_reference_code(monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxscope.core.model import kernels

    monkeypatch.setattr(kernels, "_installed", lambda module: module == "causal_conv1d")
    text = kernels.mixer_fallback(("mamba", "full_attention"))
    assert text is not None and "mamba-ssm" in text and "causal-conv1d" not in text
    assert kernels.mixer_fallback(("full_attention", "sliding_attention")) is None
    monkeypatch.setattr(kernels, "_installed", lambda module: True)
    assert kernels.mixer_fallback(("mamba", "linear_attention", "conv")) is None
