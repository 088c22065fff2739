"""What context buys on the designs built to change what it costs (issue 21): the loss
and needle passes run on a state-space checkpoint (Mamba-2) and on a hybrid of linear
and full attention (Qwen3.5's text model), through the real loading path, with a real
tokenizer — and their KV and recurrent state are recorded beside them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ctxscope.cli import main
from ctxscope.core.serialize import load_run
from tests.core.families import FAMILIES
from tests.core.quality_fixtures import TOKENIZER_FILES, _tokenizer_dir, needs_minilm, user_text  # noqa: F401

FAST = ["--min-repeats", "2", "--max-repeats", "2", "--budget", "0.02", "--device", "cpu"]
SMALL = ["--quality-targets", "16", "--quality-windows", "2", "--needle-depths", "0,100", "--needle-seeds", "1"]


def checkpoint(name: str, root: Path) -> Path:
    """A tiny random-weight *checkpoint* of one family, with MiniLM's tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = AutoConfig.for_model(name, vocab_size=30522, max_position_embeddings=2048, **FAMILIES[name])
    model = AutoModelForCausalLM.from_config(cfg)
    path = root / name
    model.save_pretrained(path)
    for file in TOKENIZER_FILES:
        shutil.copy(_tokenizer_dir() / file, path / file)
    return path


@needs_minilm
@pytest.mark.parametrize("name", ["mamba2", "qwen3_5_text"])
def test_quality_runs_on_state_space_and_hybrid_checkpoints(name: str, capsys, tmp_path: Path,
                                                            user_text: Path) -> None:  # noqa: F811
    model = checkpoint(name, tmp_path)
    out = tmp_path / "run.json"
    code = main(["sweep", str(model), "--lengths", "128,256", "--quality", "--quality-text", str(user_text), *SMALL,
                 *FAST, "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 0, err
    run = load_run(out)
    assert run.quality is not None
    assert [p.context for p in run.quality.loss] == [128, 256]
    assert all(p.status == "ok" and len(p.window_nll) == 2 for p in run.quality.loss)
    assert run.quality.needle and all(t.status == "ok" for t in run.quality.needle)
    kinds = set(json.loads(out.read_text())["model"]["layer_kinds"])
    ok = [p for p in run.points if p.status == "ok" and p.memory is not None]
    assert ok and all(p.memory.state_bytes for p in ok)  # the recurrent state is counted
    if name == "mamba2":
        assert kinds == {"mamba"} and all(p.memory.kv_cache_bytes == 0 for p in ok)  # nothing to cache per token
    else:
        assert kinds == {"linear_attention", "full_attention"} and all(p.memory.kv_cache_bytes > 0 for p in ok)
