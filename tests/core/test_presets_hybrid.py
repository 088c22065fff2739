"""Presets of the designs that change what context costs: state-space (Mamba-1, Mamba-2),
gated delta-rule linear attention with MoE (Qwen3-Next), Mamba-2 + attention + MLP hybrids
(Nemotron-H), short convolutions + attention (LFM2), and 5 sliding : 1 global attention
(Gemma 3).

Each preset is the checkpoint's published config.json (only ``_name_or_path`` set to the
Hub repository). For each: the parameter count against the published figure (where one was
found; the comment says where and how it was derived), the layer kinds, and the KV bytes per
token and the recurrent/convolution state bytes in bfloat16 against arithmetic written out
from the config, so that a regression in the architecture pass or in the cache probe is
caught. The state figures are the tensors transformers 5.24 itself allocates (its cache
keeps ``conv_kernel`` columns of convolution state, and recurrent states in float32 whatever
the model's dtype), which is what a sweep measures.
"""

from __future__ import annotations

from functools import cache

import pytest
from transformers import AutoConfig

from ctxscope.core.predict import analytic
from ctxscope.core.model.presets import preset_origin, preset_path

BF16, F32 = 2, 4


@cache
def arch_of(name: str) -> analytic.Architecture:
    """Described once per preset for the whole module (the 56B and 80B ones take seconds)."""
    return analytic.describe_config(AutoConfig.from_pretrained(str(preset_path(name))))


def indices(arch: analytic.Architecture, kind: str) -> list[int]:
    return [i for i, k in enumerate(arch.layer_kinds) if k == kind]


ORIGINS = {
    "mamba-130m": "state-spaces/mamba-130m-hf",
    "mamba-codestral-7b": "mistralai/Mamba-Codestral-7B-v0.1",
    "qwen3-next-80b-a3b": "Qwen/Qwen3-Next-80B-A3B-Instruct",
    "nemotron-h-56b": "nvidia/Nemotron-H-56B-Base-8K",
    "lfm2-1.2b": "LiquidAI/LFM2-1.2B",
    "gemma-3-1b-it": "google/gemma-3-1b-it",
}


@pytest.mark.parametrize(("preset", "repo"), sorted(ORIGINS.items()))
def test_presets_name_their_hub_repository(preset: str, repo: str) -> None:
    assert preset_origin(preset) == repo
    assert not arch_of(preset).notes  # the meta pass ran: sizes are the architecture's own


# Published parameter counts (tied embeddings counted once).
PUBLISHED = {
    # state-spaces/mamba-130m-hf is stored in float32: 242 tensors, 516,541,440 bytes of
    # tensor data = 129,135,360 parameters (tied LM head not stored); the same count is
    # quoted for that repository (revision 5708daa) in public evaluation records and size
    # tables found through the search index.
    "mamba-130m": 129_135_360,
    # mistral.ai/news/codestral-mamba (the release note of Mamba-Codestral-7B-v0.1):
    # "This is an instructed model, with 7,285,403,648 parameters."
    "mamba-codestral-7b": 7_285_403_648,
    # Hub safetensors total of Qwen/Qwen3-Next-80B-A3B-Instruct (41 shards, 75,944 BF16
    # tensors): 81,324,862,720 = total_size / 2. That includes the multi-token-prediction
    # module (mtp.*, 1,650,471,424 parameters, see test_qwen3_next_mtp_reconciles_the_checkpoint),
    # which transformers does not build: 81,324,862,720 - 1,650,471,424 = 79,674,391,296.
    "qwen3-next-80b-a3b": 79_674_391_296,
    # LiquidAI/LFM2-1.2B model.safetensors (a git mirror of the Hub repository,
    # github.com/fetchwiki/LiquidAI-LFM2-1.2B, model_files.json): 148 BF16 tensors,
    # 1,170,340,608 parameters (tied embeddings, stored once).
    "lfm2-1.2b": 1_170_340_608,
    # Hub API safetensors total of google/gemma-3-1b-it: 999,885,952 (also KerasHub's
    # gemma3 presets, keras_hub/src/models/gemma3/gemma3_presets.py, "params": 999885952,
    # and the GGUF total of ggml-org/gemma-3-1b-it-GGUF). Tied embeddings.
    "gemma-3-1b-it": 999_885_952,
}


@pytest.mark.parametrize(("preset", "params"), sorted(PUBLISHED.items()))
def test_presets_match_the_published_parameter_counts(preset: str, params: int) -> None:
    arch = arch_of(preset)
    assert arch.params == params
    assert analytic.weights_bytes(arch, "bfloat16") == BF16 * params


def test_nemotron_h_56b_params_follow_the_config() -> None:
    """No exact published count was found for nvidia/Nemotron-H-56B-Base-8K (the card says
    56B), so this checks the count against arithmetic from its config instead: hidden 8192,
    54 Mamba-2 + 54 MLP + 10 attention layers, untied 131,072-token embeddings."""
    hidden, vocab, inner, groups, state, heads = 8192, 131072, 2 * 8192, 8, 256, 256
    conv_dim = inner + 2 * groups * state  # x, B and C go through the convolution
    mamba = (hidden * (2 * inner + 2 * groups * state + heads)  # in_proj: z, x, B, C, dt
             + conv_dim * 4 + conv_dim  # depthwise conv weight (kernel 4) and bias
             + 3 * heads  # dt_bias, A_log, D
             + inner  # gated RMSNorm
             + inner * hidden  # out_proj
             + hidden)  # the block's norm
    mlp = 2 * hidden * 32768 + hidden  # up and down (relu², no gate) + norm
    attention = 2 * hidden * 64 * 128 + 2 * hidden * 8 * 128 + hidden  # q, o; k, v; norm
    params = 54 * mamba + 54 * mlp + 10 * attention + 2 * vocab * hidden + hidden
    assert params == 56_324_350_464
    assert arch_of("nemotron-h-56b").params == params


def test_qwen3_next_mtp_reconciles_the_checkpoint() -> None:
    """The checkpoint's mtp.* tensors, from the config: a fc from 2·hidden to hidden, two
    pre-fc norms, one full-attention decoder layer with the same MoE, a final norm."""
    hidden, experts, moe, shared, vocab = 2048, 512, 512, 512, 151936
    attention = (hidden * 16 * 256 * 2  # q_proj with its output gate
                 + 2 * hidden * 2 * 256  # k, v
                 + 16 * 256 * hidden  # o_proj
                 + 2 * 256)  # q_norm, k_norm
    moe_block = hidden * experts + experts * 3 * hidden * moe + 3 * hidden * shared + hidden
    assert (attention, moe_block) == (27_263_488, 1_614_809_088)
    mtp = 2 * hidden * hidden + 2 * hidden + attention + moe_block + 2 * hidden + hidden
    assert mtp == 1_650_471_424
    assert arch_of("qwen3-next-80b-a3b").params + mtp == 81_324_862_720  # safetensors total
    # And the 48 layers, embeddings and LM head (untied) themselves:
    linear = (hidden * (2 * 16 * 128 + 2 * 32 * 128)  # in_proj_qkvz: q, k (16 heads), v, z (32 heads)
              + hidden * 2 * 32  # in_proj_ba
              + (2 * 16 * 128 + 32 * 128) * 4  # conv1d, kernel 4, no bias
              + 2 * 32 + 128  # A_log, dt_bias; gated norm over the value head dim
              + 32 * 128 * hidden)  # out_proj
    layers = 36 * linear + 12 * attention + 48 * (moe_block + 2 * hidden)
    assert layers + 2 * vocab * hidden + hidden == 79_674_391_296


def test_qwen3_next_experts_and_active_params() -> None:
    arch = arch_of("qwen3-next-80b-a3b")
    e = arch.experts
    assert e is not None and (e.num_experts, e.top_k) == (512, 10)
    assert e.expert_params == 48 * 512 * 3 * 2048 * 512  # gate, up, down of every routed expert
    # All but the 502 of 512 routed experts a token skips; the shared expert always runs.
    assert arch.active_params == arch.params - e.expert_params + e.expert_params * 10 // 512 == 3_874_929_408
    # "A3B": 3B activated (the card). 3.87 B counts the embeddings and LM head (622 M);
    # the non-embedding part is 3.25 B.
    assert 3.0e9 < arch.active_params - 2 * 151936 * 2048 < 3.5e9
    assert analytic.decode_weight_bytes(arch, "bfloat16") == BF16 * arch.active_params
    # A batch of 64 makes 640 picks of 512 experts: the step may touch them all.
    assert analytic.decode_weight_bytes(arch, "bfloat16", batch=64) == BF16 * arch.params


LAYOUTS = {
    # preset: (layer kinds, KV bytes per token in bf16, state bytes in bf16)
    "mamba-130m": (
        {"mamba": 24},
        0,
        # 24 layers × (conv: intermediate 1536 × kernel 4, bf16; ssm: 1536 × state 16, fp32)
        24 * (1536 * 4 * BF16 + 1536 * 16 * F32)),
    "mamba-codestral-7b": (
        {"mamba": 64},
        0,
        # 64 × (conv: (8192 + 2·8 groups·128) × 4, bf16; ssm: 128 heads × 64 × 128, fp32)
        64 * ((8192 + 2 * 8 * 128) * 4 * BF16 + 128 * 64 * 128 * F32)),
    "qwen3-next-80b-a3b": (
        {"linear_attention": 36, "full_attention": 12},
        # 12 full-attention layers × 2 KV heads × 256 × (K + V) × 2 bytes
        12 * 2 * 256 * 2 * BF16,
        # 36 × (conv: (2·16·128 + 32·128) × kernel 4, bf16; recurrent: 32 heads × 128 × 128, fp32)
        36 * ((2 * 16 * 128 + 32 * 128) * 4 * BF16 + 32 * 128 * 128 * F32)),
    "nemotron-h-56b": (
        {"mamba": 54, "mlp": 54, "full_attention": 10},
        10 * 8 * 128 * 2 * BF16,
        # 54 × (conv: (16384 + 2·8·256) × 4, bf16; ssm: 256 heads × 64 × 256, fp32)
        54 * ((16384 + 2 * 8 * 256) * 4 * BF16 + 256 * 64 * 256 * F32)),
    "lfm2-1.2b": (
        {"conv": 10, "full_attention": 6},
        6 * 8 * 64 * 2 * BF16,
        # 10 short-convolution layers × hidden 2048 × conv_L_cache 3, bf16; no recurrence
        10 * 2048 * 3 * BF16),
    "gemma-3-1b-it": (
        {"sliding_attention": 22, "full_attention": 4},
        26 * 1 * 256 * 2 * BF16,
        0),
}


@pytest.mark.parametrize("preset", sorted(LAYOUTS))
def test_layer_kinds_kv_and_state_bytes(preset: str) -> None:
    kinds, kv_per_token, state = LAYOUTS[preset]
    arch = arch_of(preset)
    assert analytic.kinds_summary(arch) == kinds
    assert len(arch.layer_kinds) == arch.num_layers
    assert analytic.kv_bytes_per_token(arch, "bfloat16") == kv_per_token
    assert analytic.state_bytes(arch, "bfloat16") == state
    stateful = sum(n for k, n in kinds.items() if k in ("mamba", "linear_attention", "conv"))
    assert len(arch.state_layers) == stateful
    attention = sum(n for k, n in kinds.items() if k in ("full_attention", "sliding_attention"))
    assert len(arch.kv_layers) == attention
    # A decode step reads the weights it uses, the cache and every state once.
    assert analytic.decode_bytes(arch, 0, "bfloat16") == analytic.decode_weight_bytes(arch, "bfloat16") + state


def test_recurrent_states_are_float32_and_convolutions_follow_the_model() -> None:
    for preset in ("mamba-130m", "mamba-codestral-7b", "qwen3-next-80b-a3b", "nemotron-h-56b"):
        layers = arch_of(preset).state_layers
        assert all(s.recurrent_float32 and not s.conv_float32 for s in layers), preset
    lfm2 = arch_of("lfm2-1.2b").state_layers
    assert all(s.recurrent_elements == 0 and not s.conv_float32 for s in lfm2)
    # The recurrent part is float32 in either dtype.
    qwen = arch_of("qwen3-next-80b-a3b")
    conv = 36 * 8192 * 4  # only the convolution state changes with the model's dtype
    assert analytic.state_bytes(qwen, "float32") - analytic.state_bytes(qwen, "bfloat16") == conv * (F32 - BF16)


def test_hybrid_layer_positions() -> None:
    # full_attention_interval 4
    assert indices(arch_of("qwen3-next-80b-a3b"), "full_attention") == list(range(3, 48, 4))
    assert indices(arch_of("lfm2-1.2b"), "full_attention") == [2, 5, 8, 10, 12, 14]  # full_attn_idxs
    assert indices(arch_of("gemma-3-1b-it"), "full_attention") == [5, 11, 17, 23]  # sliding_window_pattern 6
    pattern = "M-M-M-M*" + "-M-M-M-M-M*" * 9 + "-M-M-M-M-M-"  # its hybrid_override_pattern, 118 layers
    nemotron = arch_of("nemotron-h-56b")
    assert "".join({"mamba": "M", "mlp": "-", "full_attention": "*"}[k] for k in nemotron.layer_kinds) == pattern


def test_gemma3_sliding_windows_cap_the_cache() -> None:
    arch = arch_of("gemma-3-1b-it")
    windows = [layer.window for layer in arch.kv_layers]
    assert windows == ([511] * 5 + [None]) * 4 + [511] * 2  # sliding_window 512: 511 kept after a prefill
    per_layer = 1 * 256 * 2 * BF16
    assert analytic.kv_bytes(arch, 32768, "bfloat16") == 22 * 511 * per_layer + 4 * 32768 * per_layer
    assert analytic.kv_bytes(arch, 400, "bfloat16") == 26 * 400 * per_layer  # below the window: all layers grow


def test_pure_state_space_models_hold_no_kv() -> None:
    for preset in ("mamba-130m", "mamba-codestral-7b"):
        arch = arch_of(preset)
        assert not arch.kv_layers and arch.experts is None
        assert analytic.kv_bytes(arch, 131072, "bfloat16") == 0
        # Prefill FLOPs are linear in L: no attention term.
        f1, f2 = analytic.prefill_flops(arch, 1000), analytic.prefill_flops(arch, 2000)
        assert f2 - f1 == pytest.approx(f1 - analytic.prefill_flops(arch, 0))
