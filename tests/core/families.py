"""Tiny random-weight configs of every decoder family that changes what context costs:
state-space (Mamba, Mamba-2, Falcon-Mamba), hybrids of Mamba and attention (Jamba,
Bamba, Zamba2, Nemotron-H, Granite-4.0-H, Falcon-H1), short convolutions + attention
(LFM2), gated delta-rule linear attention + attention (Qwen3-Next, Qwen3.5), sliding /
global attention (Gemma 3) and a mixture of experts (Qwen3-MoE). Each is a few layers of
hidden size 64: built in well under a second on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FAMILIES: dict[str, dict[str, Any]] = {
    "mamba": dict(hidden_size=64, num_hidden_layers=2, state_size=8, expand=2, conv_kernel=4),
    "mamba2": dict(hidden_size=64, num_hidden_layers=2, state_size=16, expand=2, num_heads=8, head_dim=16, n_groups=1,
                   conv_kernel=4, chunk_size=64),
    "falcon_mamba": dict(hidden_size=64, num_hidden_layers=2, state_size=8, expand=2, conv_kernel=4),
    "jamba": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2,
                  expert_layer_offset=1, num_experts=4, num_experts_per_tok=2, mamba_d_state=8, mamba_d_conv=4,
                  mamba_expand=2, mamba_dt_rank=8),
    "bamba": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, attn_layer_indices=[1], mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1,
                  mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=64),
    "zamba2": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=4, mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_ngroups=1,
                   mamba_headdim=16, n_mamba_heads=8, chunk_size=64,
                   layers_block_type=["mamba", "hybrid", "mamba", "hybrid"], hybrid_layer_ids=[1, 3],
                   num_mem_blocks=1, adapter_rank=8),
    "nemotron_h": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, hybrid_override_pattern="M-M*", mamba_num_heads=8,
                       mamba_head_dim=16, n_groups=1, ssm_state_size=16, conv_kernel=4, expand=2, chunk_size=64),
    "granitemoehybrid": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                             num_key_value_heads=2, layer_types=["mamba", "mamba", "mamba", "attention"],
                             mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1, mamba_d_state=16, mamba_d_conv=4,
                             mamba_expand=2, mamba_chunk_size=64, num_local_experts=4, num_experts_per_tok=2,
                             shared_intermediate_size=128),
    "falcon_h1": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1,
                      mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=64, mamba_d_ssm=128),
    "lfm2": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, layer_types=["conv", "conv", "full_attention", "conv"], conv_L_cache=3),
    "qwen3_next": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, linear_num_value_heads=4, linear_num_key_heads=2,
                       linear_key_head_dim=16, linear_value_head_dim=16, linear_conv_kernel_dim=4, num_experts=4,
                       num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32,
                       decoder_sparse_step=1),
    "qwen3_5_text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, linear_num_value_heads=4, linear_num_key_heads=2,
                         linear_key_head_dim=16, linear_value_head_dim=16, linear_conv_kernel_dim=4),
    "gemma3_text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=16, sliding_window=16),
    "qwen3_moe": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32),
}

#: Decoder layer kinds ctxscope reads for each (core.layer_kinds).
KINDS = {
    "mamba": ("mamba",) * 2, "mamba2": ("mamba",) * 2, "falcon_mamba": ("mamba",) * 2,
    "jamba": ("mamba", "full_attention") * 2, "bamba": ("mamba", "full_attention", "mamba", "mamba"),
    "zamba2": ("mamba", "hybrid") * 2, "nemotron_h": ("mamba", "mlp", "mamba", "full_attention"),
    "granitemoehybrid": ("mamba",) * 3 + ("full_attention",), "falcon_h1": ("hybrid",) * 2,
    "lfm2": ("conv", "conv", "full_attention", "conv"),
    "qwen3_next": ("linear_attention",) * 3 + ("full_attention",),
    "qwen3_5_text": ("linear_attention",) * 3 + ("full_attention",),
    "gemma3_text": ("sliding_attention",) * 5 + ("full_attention",), "qwen3_moe": ("full_attention",) * 2,
}


def family_config(name: str) -> Any:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    cfg = AutoConfig.for_model(name, vocab_size=256, **FAMILIES[name])
    cfg.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[name]]
    return cfg


def write_family(name: str, root: Path) -> Path:
    """``root/NAME/config.json`` of one family (what a user would point ctxscope at)."""
    path = root / name / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    family_config(name).save_pretrained(path.parent)
    return path
