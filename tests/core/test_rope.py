"""Beyond the trained length: ``--rope-scaling linear:F | dynamic:F | yarn:F`` set on the
config before the weights load (what each does, checked on the model's own rotary
embedding and logits), refused with the reason for position schemes that have no such
option, and a matrix axis like --dtype and --attn whose cells a comparison tells apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ctxscope.core.errors import BadInputError
from ctxscope.core.model.loading import load_model
from ctxscope.core.model.rope import parse_rope_scaling
from ctxscope.core.spec import ModelSpec
from tests.core.quality_fixtures import needs_minilm, save_tiny, user_text  # noqa: F401
from tests.cli.test_quality_cli import FAST, run_cli


@pytest.fixture(scope="module")
def short_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama trained (so to speak) to 64 positions, with a real tokenizer."""
    return save_tiny(tmp_path_factory.mktemp("rope") / "short-lm", max_positions=64)


def _logits(path: Path, rope: str | None, length: int) -> torch.Tensor:
    loaded = load_model(ModelSpec(str(path), device="cpu", rope_scaling=rope))
    ids = torch.arange(length).remainder(1000).unsqueeze(0) + 1000
    with torch.inference_mode():
        return loaded.model(input_ids=ids).logits[0].float()


@needs_minilm
def test_each_method_changes_the_rotary_embedding_as_transformers_defines_it(short_lm: Path) -> None:
    plain = load_model(ModelSpec(str(short_lm), device="cpu"))
    linear = load_model(ModelSpec(str(short_lm), device="cpu", rope_scaling="linear:4"))
    yarn = load_model(ModelSpec(str(short_lm), device="cpu", rope_scaling="yarn:4"))
    assert plain.rope_scaling is None and linear.rope_scaling == "linear:4" and yarn.rope_scaling == "yarn:4"
    inv = plain.model.model.rotary_emb.inv_freq
    torch.testing.assert_close(linear.model.model.rotary_emb.inv_freq, inv / 4)  # position interpolation
    assert linear.model.config.rope_parameters["rope_type"] == "linear"
    assert yarn.model.config.rope_parameters["original_max_position_embeddings"] == 64
    assert linear.info.max_positions == 64  # the trained length stays the claimed one
    # Inside the trained length dynamic NTK leaves the model as it was; linear and YaRN do not.
    short = _logits(short_lm, None, 48)
    torch.testing.assert_close(_logits(short_lm, "dynamic:4", 48), short)
    assert not torch.allclose(_logits(short_lm, "linear:4", 48), short, atol=1e-4)
    assert not torch.allclose(_logits(short_lm, "yarn:4", 48), short, atol=1e-4)
    # Past it, dynamic rescales too.
    assert not torch.allclose(_logits(short_lm, "dynamic:4", 160)[-1], _logits(short_lm, None, 160)[-1], atol=1e-4)


def test_bad_requests_and_position_schemes_without_the_option_are_refused() -> None:
    assert parse_rope_scaling("YaRN:4.0") == ("yarn", 4.0) and parse_rope_scaling("none") is None
    for bad in ("yarn", "ntk:2", "linear:1", "linear:-2", "dynamic:x"):
        with pytest.raises(BadInputError, match="use linear:F, dynamic:F or yarn:F"):
            parse_rope_scaling(bad)
    for source, reason in (("preset:gpt2", "learns a position table of 1,024 positions"),
                           ("preset:mamba-130m", "state-space model"),
                           ("preset:llama-3.1-8b", "already uses llama3 RoPE scaling (factor 8)"),
                           ("preset:gemma-3-1b-it", "a rotary embedding per layer type")):
        with pytest.raises(BadInputError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            load_model(ModelSpec(source, device="cpu", rope_scaling="yarn:2"))


def test_a_model_without_rope_is_refused_before_anything_loads(capsys, monkeypatch) -> None:
    import ctxscope.core.model.loading as loading

    monkeypatch.setattr(loading, "load_model", lambda spec: pytest.fail("a model was loaded"))
    code, _, err = run_cli(capsys, "sweep", "preset:gpt2", "--rope-scaling", "none,yarn:2", "--lengths", "32", *FAST)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "learns a position table" in lines[0] and "Traceback" not in err


@needs_minilm
@pytest.mark.slow
def test_a_rope_matrix_runs_quality_past_the_trained_length(capsys, short_lm: Path, user_text: Path,  # noqa: F811
                                                            tmp_path: Path) -> None:
    out = tmp_path / "runs"
    code, printed, err = run_cli(capsys, "sweep", str(short_lm), "--rope-scaling", "none,linear:2,dynamic:2,yarn:2",
                                 "--lengths", "32,64,96", "--mode", "prefill", "--allow-beyond-max", "--quality",
                                 "loss", "--quality-text", str(user_text), "--quality-targets", "8",
                                 "--quality-windows", "2", *FAST, "--out", str(out), "--no-store")
    assert code == 0, err
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert sorted(str(r["settings"]["rope_scaling"]) for r in runs) == ["None", "dynamic:2", "linear:2", "yarn:2"]
    for r in runs:  # every cell measured loss beyond the 64 positions it was trained to
        assert [(p["context"], p["status"]) for p in r["quality"]["loss"]] == [(32, "ok"), (64, "ok"), (96, "ok")]
    # The comparison tells the cells apart by their RoPE scaling.
    for label in ("RoPE as trained", "RoPE linear:2", "RoPE dynamic:2", "RoPE yarn:2"):
        assert label in printed
    by_rope = {r["settings"]["rope_scaling"]: r for r in runs}
    inside = {k: r["quality"]["loss"][0]["window_nll"] for k, r in by_rope.items()}
    assert inside["dynamic:2"] == inside[None] and inside["linear:2"] != inside[None]  # 32 + 7 < 64 positions


def test_learned_position_tables_are_told_from_the_config() -> None:
    from transformers import AutoConfig

    from ctxscope.core.model.rope import learns_positions

    for kind, learned in (("gpt2", True), ("gpt_neo", True), ("bert", True), ("gptj", False), ("codegen", False),
                          ("llama", False)):
        assert learns_positions(AutoConfig.for_model(kind)) is learned, kind
