"""Loading every kind of source; fast, finite random weights; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ctxscope.core.errors import BadInputError, CtxscopeError, ModelLoadError
from ctxscope.core.model.loading import load_model
from ctxscope.core.model.presets import preset_names
from ctxscope.core.spec import ModelSpec

REQUIRED_PRESETS = {"gpt2", "bert-base-uncased", "llama-3.2-1b", "llama-3.1-8b", "qwen2.5-0.5b", "qwen2.5-7b",
                    "mistral-7b-v0.1", "phi-3-mini", "gemma-2-2b", "tinyllama-1.1b"}

# Parameter counts of the published checkpoints (tied embeddings counted once).
PUBLISHED_PARAMS = {"gpt2": 124_439_808, "bert-base-uncased": 109_482_240, "llama-3.2-1b": 1_235_814_400,
                    "llama-3.1-8b": 8_030_261_248, "qwen2.5-0.5b": 494_032_768, "qwen2.5-7b": 7_615_616_512,
                    "mistral-7b-v0.1": 7_241_732_096, "phi-3-mini": 3_821_079_552, "gemma-2-2b": 2_614_341_888,
                    "tinyllama-1.1b": 1_100_048_384}


def _logits(loaded, length: int = 8) -> torch.Tensor:
    ids = torch.randint(3, loaded.info.vocab_size, (1, length))
    with torch.inference_mode():
        out = loaded.model(input_ids=ids)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def test_presets_are_the_published_architectures() -> None:
    from ctxscope.cli.info_cmd import preset_table

    assert REQUIRED_PRESETS <= set(preset_names())
    table = {row["name"]: row for row in preset_table()}
    for name, params in PUBLISHED_PARAMS.items():
        assert table[name]["params"] == params, name
    assert table["bert-base-uncased"]["is_decoder"] is False
    assert table["llama-3.2-1b"]["num_kv_heads"] == 8 and table["gemma-2-2b"]["head_dim"] == 256
    assert table["mistral-7b-v0.1"]["sliding_window"] == 4096


def test_preset_gpt2_random_weights_are_tied_and_finite() -> None:
    loaded = load_model(ModelSpec("preset:gpt2", device="cpu"))
    assert loaded.info.random_weights and loaded.info.params == PUBLISHED_PARAMS["gpt2"]
    assert loaded.model.lm_head.weight.data_ptr() == loaded.model.transformer.wte.weight.data_ptr()
    assert torch.isfinite(_logits(loaded)).all()
    # Rotary/positional buffers must be real values, not uninitialised memory.
    assert loaded.info.max_positions == 1024 and loaded.dtype == torch.float32


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert", "mistral"])
def test_config_json_source(tiny_config_files: dict[str, Path], name: str) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files[name]), device="cpu"))
    assert loaded.info.random_weights
    assert loaded.info.is_decoder == (name != "bert")
    assert torch.isfinite(_logits(loaded)).all()
    if name == "llama":
        inv_freq = loaded.model.model.rotary_emb.inv_freq
        assert torch.isfinite(inv_freq).all() and inv_freq[0] == 1.0


def test_checkpoint_directory_loads_real_weights(tiny_checkpoint: Path) -> None:
    from transformers import AutoModelForCausalLM

    loaded = load_model(ModelSpec(str(tiny_checkpoint), device="cpu"))
    assert not loaded.info.random_weights and loaded.info.num_kv_heads == 2
    reference = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    ids = torch.arange(3, 19).unsqueeze(0)
    with torch.inference_mode():
        assert torch.equal(loaded.model(input_ids=ids).logits, reference(input_ids=ids).logits)
    randomised = load_model(ModelSpec(str(tiny_checkpoint), device="cpu", random_weights=True))
    assert randomised.info.random_weights


def test_dtype_choice(tiny_config_files: dict[str, Path]) -> None:
    src = str(tiny_config_files["llama"])
    assert load_model(ModelSpec(src, device="cpu", dtype="bfloat16")).dtype == torch.bfloat16
    assert load_model(ModelSpec(src, device="cpu", dtype="auto")).dtype == torch.float32


def test_attn_implementation_is_recorded(tiny_config_files: dict[str, Path]) -> None:
    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu", attn_implementation="eager"))
    assert loaded.attn_implementation == "eager"


@pytest.mark.parametrize(("source", "error"), [
    ("preset:nope", BadInputError),
    ("demo:nope", BadInputError),
    ("/no/such/dir", BadInputError),
    ("./missing-model", BadInputError),
    ("not a valid id!", BadInputError),
    ("", BadInputError),
    ("some-org/some-model-that-is-not-cached", ModelLoadError),
])
def test_bad_sources(source: str, error: type) -> None:
    with pytest.raises(error):
        load_model(ModelSpec(source, device="cpu"))


def test_bad_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no config.json"):
        load_model(ModelSpec(str(tmp_path / "empty"), device="cpu"))
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\x80\x04junk")
    with pytest.raises(BadInputError, match="config.json"):
        load_model(ModelSpec(str(weights), device="cpu"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ModelLoadError):
        load_model(ModelSpec(str(broken), device="cpu"))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(ModelLoadError):
        load_model(ModelSpec(str(unknown), device="cpu"))


# Seeds whose bytes make torch's weights-only unpickler fail each way it can (torch 2.13):
# the message must not depend on which one a damaged file happens to trigger.
@pytest.mark.parametrize("seed", [0, 2, 20, 195], ids=["UnpicklingError", "IndexError", "KeyError", "UnicodeDecodeError"])
def test_damaged_bin_is_one_message_whatever_breaks(tiny_checkpoint: Path, tmp_path: Path, seed: int) -> None:
    import random
    import shutil

    folder = tmp_path / "damaged"
    folder.mkdir()
    shutil.copy(tiny_checkpoint / "config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02" + random.Random(seed).randbytes(998))
    with pytest.raises(ModelLoadError, match="not loadable safely.*never unpickles code") as info:
        load_model(ModelSpec(str(folder), device="cpu"))
    assert "\n" not in str(info.value)


def test_remote_code_is_refused_without_opt_in(tmp_path: Path) -> None:
    cfg = {"model_type": "custom-thing", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"},
           "architectures": ["CustomForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    marker = tmp_path / "executed"
    (tmp_path / "configuration_custom.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    with pytest.raises(CtxscopeError):
        load_model(ModelSpec(str(tmp_path), device="cpu"))
    assert not marker.exists(), "model code ran without --trust-remote-code"


@pytest.mark.parametrize(("device", "dtype"), [("cuda:7", "auto"), ("tpu", "auto"), ("cpu", "float8"), ("mps", "auto")])
def test_bad_device_or_dtype(tiny_config_files: dict[str, Path], device: str, dtype: str) -> None:
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(BadInputError):
        load_model(ModelSpec(str(tiny_config_files["llama"]), device=device, dtype=dtype))


def test_device_map_needs_a_checkpoint(tiny_config_files: dict[str, Path]) -> None:
    with pytest.raises(BadInputError, match="checkpoint"):
        load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu", device_map="auto"))
