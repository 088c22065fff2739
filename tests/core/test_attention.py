"""Attention capture equals the model's own attention: for every supported architecture,
pooled maps, profiles and statistics match eager ``output_attentions=True`` within 1e-5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ctxscope.core.attention import CaptureConfig, CaptureUnsupported, capture
from ctxscope.core.attention.collect import tile_edges
from ctxscope.core.errors import BadInputError
from ctxscope.core.model.loading import load_model
from ctxscope.core.spec import ModelSpec

L = 40


def _configs() -> dict[str, object]:
    from transformers import (BertConfig, Gemma2Config, GemmaConfig, GPT2Config, LlamaConfig, MistralConfig,
                              Phi3Config, Qwen2Config)

    common = dict(vocab_size=256, initializer_range=0.5)
    dec = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               max_position_embeddings=256, **common)
    return {
        "gpt2": GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, bos_token_id=0, eos_token_id=0, **common),
        "bert": BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                           max_position_embeddings=256, **common),
        "llama": LlamaConfig(num_key_value_heads=2, **dec),
        "qwen2": Qwen2Config(num_key_value_heads=2, use_sliding_window=False, **dec),
        "mistral": MistralConfig(num_key_value_heads=2, sliding_window=16, **dec),
        "gemma": GemmaConfig(num_key_value_heads=1, head_dim=16, **dec),
        "gemma2": Gemma2Config(num_key_value_heads=2, head_dim=16, sliding_window=8, attn_logit_softcapping=5.0,
                               final_logit_softcapping=30.0, query_pre_attn_scalar=16, **dec),
        "phi3": Phi3Config(num_key_value_heads=4, sliding_window=16, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                           **dec),
    }


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from transformers import AutoModel, AutoModelForCausalLM

    out = {}
    for name, cfg in _configs().items():
        torch.manual_seed(0)
        cls = AutoModel if name == "bert" else AutoModelForCausalLM
        model = cls.from_config(cfg)
        path = tmp_path_factory.mktemp(name)
        model.save_pretrained(path)
        out[name] = path
    return out


def pool_reference(attn: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Independent numpy pooling of full [H, L, L] probabilities."""
    t = len(edges) - 1
    out = np.zeros((attn.shape[0], t, t))
    for i in range(t):
        rows = attn[:, edges[i]:edges[i + 1], :]
        for j in range(t):
            out[:, i, j] = rows[:, :, edges[j]:edges[j + 1]].sum(-1).mean(-1)
    return out


def eager_attentions(loaded, ids: torch.Tensor) -> list[np.ndarray]:
    model = loaded.model
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            kwargs = {"use_cache": False} if loaded.info.is_decoder else {}
            out = model(input_ids=ids, output_attentions=True, **kwargs)
    finally:
        model.set_attn_implementation(previous)
    return [a[0].float().numpy() for a in out.attentions]


@pytest.mark.parametrize("arch", list(_configs()))
def test_capture_equals_eager_attention(checkpoints: dict[str, Path], arch: str) -> None:
    loaded = load_model(ModelSpec(str(checkpoints[arch]), device="cpu"))
    before = loaded.model.config._attn_implementation
    ids = torch.randint(3, 256, (1, L), generator=torch.Generator().manual_seed(1))
    cfg = CaptureConfig(tiles=7, profile_rows=(-1, 5), sink_tokens=3, local_window=6, span=(10, 14))
    cap = capture(loaded, ids, cfg)
    assert loaded.model.config._attn_implementation == before  # the timed kernel is untouched
    reference = eager_attentions(loaded, ids)
    assert [la.layer for la in cap.layers] == list(range(len(reference)))
    for la, ref in zip(cap.layers, reference):
        np.testing.assert_allclose(la.maps, pool_reference(ref, la.tile_edges), atol=1e-5, err_msg=f"{arch} {la.layer}")
        np.testing.assert_allclose(la.profiles[L - 1], ref[:, L - 1, :], atol=1e-5)
        np.testing.assert_allclose(la.profiles[5], ref[:, 5, :], atol=1e-5)
        q = np.arange(L)[:, None]
        k = np.arange(L)[None, :]
        np.testing.assert_allclose(la.stats["sink_mass"], ref[:, :, :3].sum(-1).mean(-1), atol=1e-5)
        np.testing.assert_allclose(la.stats["mean_distance"], (ref * np.abs(q - k)).sum(-1).mean(-1), rtol=1e-5)
        np.testing.assert_allclose(la.stats["local_mass"], (ref * (np.abs(q - k) < 6)).sum(-1).mean(-1), atol=1e-5)
        seen = ref[:, 10:, 10:14].sum(-1).mean(-1) if loaded.info.is_decoder else ref[:, :, 10:14].sum(-1).mean(-1)
        np.testing.assert_allclose(la.stats["span_mass"], seen, atol=1e-5)
    # Attention is sharp, not uniform: the comparison is not trivially true.
    assert max(la.maps.max() for la in cap.layers) > 0.3


@pytest.mark.parametrize("arch", ["llama", "gemma2", "bert"])
def test_capture_kernel_output_equals_eager(checkpoints: dict[str, Path], arch: str) -> None:
    from ctxscope.core.attention import kernel

    loaded = load_model(ModelSpec(str(checkpoints[arch]), device="cpu"))
    ids = torch.randint(3, 256, (2, L), generator=torch.Generator().manual_seed(2))
    model = loaded.model

    def run(impl: str) -> torch.Tensor:
        model.set_attn_implementation(impl)
        with torch.inference_mode():
            out = model(input_ids=ids)
        return out.logits if hasattr(out, "logits") else out.last_hidden_state

    try:
        torch.testing.assert_close(run(kernel.register()), run("eager"), atol=1e-4, rtol=1e-4)
    finally:
        model.set_attn_implementation("sdpa" if arch != "gemma2" else "eager")


def test_small_chunks_give_the_same_maps(checkpoints: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(checkpoints["mistral"]), device="cpu"))
    ids = torch.randint(3, 256, (1, L), generator=torch.Generator().manual_seed(3))
    whole = capture(loaded, ids, CaptureConfig(tiles=5))
    chunked = capture(loaded, ids, CaptureConfig(tiles=5, budget_elements=4 * L * 3))  # 3 query rows a chunk
    for a, b in zip(whole.layers, chunked.layers):
        np.testing.assert_allclose(a.maps, b.maps, atol=1e-6)
        assert a.stats.keys() == b.stats.keys()


def test_tiles_and_layers(checkpoints: dict[str, Path]) -> None:
    edges = tile_edges(1000, 7)
    assert edges[0] == 0 and edges[-1] == 1000 and len(edges) == 8 and np.all(np.diff(edges) > 0)
    assert len(tile_edges(5, 256)) == 6  # never more tiles than tokens
    loaded = load_model(ModelSpec(str(checkpoints["llama"]), device="cpu"))
    ids = torch.randint(3, 256, (1, 16))
    cap = capture(loaded, ids, CaptureConfig(layers=(-1,)))
    assert [la.layer for la in cap.layers] == [1] and cap.layers[0].maps.shape == (4, 16, 16)
    with pytest.raises(BadInputError, match="layer 5"):
        capture(loaded, ids, CaptureConfig(layers=(5,)))
    with pytest.raises(BadInputError, match="span"):
        capture(loaded, ids, CaptureConfig(span=(10, 40)))


def test_unsupported_attention_is_refused(checkpoints: dict[str, Path], monkeypatch) -> None:
    loaded = load_model(ModelSpec(str(checkpoints["llama"]), device="cpu"))
    # Simulate remote code whose attention never calls the interface: nothing is recorded.
    from ctxscope.core.attention import kernel

    monkeypatch.setattr(kernel, "_active", {"acc": None})
    monkeypatch.setattr(kernel, "set_accumulator", lambda acc: None)
    with pytest.raises(CaptureUnsupported, match="AttentionInterface"):
        capture(loaded, torch.randint(3, 256, (1, 8)))
    assert loaded.model.config._attn_implementation == "sdpa"


def test_long_context_memory_is_linear_in_chunks() -> None:
    """A 2-layer Llama at 8k tokens on CPU: the pass allocates O(chunk·L), not O(H·L²)
    (the full maps would be 4 heads × 8k² × 4 B = 1 GiB per layer)."""
    from transformers import LlamaConfig

    from ctxscope.core.measure.memory import PeakMemory

    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=256, max_position_embeddings=8192)
    path = Path(__import__("tempfile").mkdtemp()) / "config.json"
    cfg.to_json_file(str(path))
    loaded = load_model(ModelSpec(str(path), device="cpu"))
    ids = torch.randint(3, 256, (1, 8192))
    with PeakMemory(torch.device("cpu")) as probe:
        cap = capture(loaded, ids, CaptureConfig(budget_elements=1 << 22))
    grown = probe.peak_rss - probe.rss_before
    assert grown < 600 * 2**20, f"capture grew RSS by {grown / 2**20:.0f} MiB"
    assert cap.layers[0].maps.shape == (4, 256, 256)
    np.testing.assert_allclose(cap.layers[0].maps.sum(-1), 1.0, atol=1e-4)


def test_sliding_window_is_applied(checkpoints: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(checkpoints["mistral"]), device="cpu"))
    cap = capture(loaded, torch.randint(3, 256, (1, L)), CaptureConfig())
    row = cap.layers[0].profiles[L - 1]
    assert np.all(row[:, : L - 16] == 0) and np.allclose(row[:, L - 16:].sum(-1), 1.0, atol=1e-5)
