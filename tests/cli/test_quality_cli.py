"""``ctxscope sweep --quality``: the run file and the history hold the quality results,
and every refusal is one line with exit 2 (random weights, encoders, no tokenizer, bad
texts, lengths a text cannot supply, bad options)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctxscope.cli import main
from ctxscope.core.serialize import load_run
from tests.core.quality_fixtures import needs_minilm, save_tiny, tiny_lm, user_text  # noqa: F401

FAST = ["--min-repeats", "2", "--max-repeats", "2", "--budget", "0.02", "--device", "cpu"]
SMALL = ["--quality-targets", "16", "--quality-windows", "2", "--needle-depths", "0,100", "--needle-seeds", "1"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@needs_minilm
def test_sweep_quality_end_to_end(capsys, tiny_lm: Path, user_text: Path, tmp_path: Path) -> None:
    out_json, out_csv = tmp_path / "run.json", tmp_path / "run.csv"
    code, out, err = run_cli(capsys, "sweep", str(tiny_lm), "--lengths", "128,256", "--quality", "--quality-text",
                             str(user_text), *SMALL, *FAST, "--fits", "4096", "--out", str(out_json))
    assert code == 0, err
    assert "loss    C=128" in err and "needle  L=256" in err  # live lines as points arrive
    assert "claimed 2,048 · fits 4,096 · effective:" in out and "trade-off" in out
    data = json.loads(out_json.read_text())
    q = data["settings"]["quality"]
    assert q["text"] == "my-notes.txt" and q["windows"] == 2 and len(q["window_starts"]) == 2 and q["fits"] == 4096
    assert [p["context"] for p in data["quality"]["loss"]] == [128, 256]
    assert {row["length"] for row in data["quality"]["derived"]["grid"]} == {128, 256}
    assert data["quality"]["derived"]["effective"]["claimed"] == 2048
    run = load_run(out_json)
    assert len(run.quality.needle) == 1 + 2 * (2 + 1)  # adjacent once; per length 2 depths + no key
    # The history holds the same quality results.
    code, listing, _ = run_cli(capsys, "runs", "show", run.id, "--format", "json")
    assert code == 0 and json.loads(listing)["quality"]["loss"] == data["quality"]["loss"]
    code, shown, _ = run_cli(capsys, "runs", "show", run.id)
    assert code == 0 and "vs context read before them" in shown and "claimed 2,048 · fits 4,096" in shown


@pytest.fixture(scope="module")
def refusal_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refusals")
    (root / "binary.txt").write_bytes(b"\x7fELF\x00\x00\x01" * 100)
    (root / "latin1.txt").write_bytes("caf\xe9 au lait ".encode("latin-1") * 100)
    (root / "empty.txt").write_text("  \n\n", encoding="utf-8")
    (root / "short.txt").write_text("It was a bright cold day in April, and the clocks were striking thirteen. " * 3,
                                    encoding="utf-8")
    (root / "maxctx.json").write_text(json.dumps({"largest_fit": None}), encoding="utf-8")
    return root


REFUSALS = [
    (["preset:gpt2", "--quality"], "has random weights"),
    (["{lm}", "--quality-targets", "32"], "--quality-targets applies to --quality"),
    (["{lm}", "--quality", "perplexity"], "use loss, needle or loss,needle"),
    (["{lm}", "--quality", "--needle-depths", "0,150"], "percentages from 0 to 100"),
    (["{lm}", "--quality", "--quality-windows", "0"], "--quality-windows must be from 1"),
    (["{lm}", "--quality", "--effective-threshold", "1.5"], "--effective-threshold must be in (0, 1]"),
    (["{lm}", "--quality", "--fits", "{files}/maxctx.json"], "no largest_fit"),
    (["{lm}", "--quality", "--quality-text", "{files}/missing.txt"], "no such file"),
    (["{lm}", "--quality", "--quality-text", "{files}/binary.txt"], "a binary file, not text"),
    (["{lm}", "--quality", "--quality-text", "{files}/latin1.txt"], "give it: --quality-text-encoding cp1252"),
    (["{lm}", "--quality", "--quality-text", "{files}/latin1.txt", "--quality-text-encoding", "klingon"],
     "not an encoding Python knows"),
    (["{lm}", "--quality", "--needle-tasks", "single,haystack"], "--needle-tasks 'single,haystack': use any of"),
    (["{lm}", "--needle-tasks", "vt"], "--needle-tasks applies to --quality"),
    (["{lm}", "--quality", "--quality-text", "{files}/empty.txt"], "the file is empty"),
    (["{lm}", "--quality", "loss", "--quality-text", "{files}/short.txt"], "supplies contexts up to 0 tokens, not 128"),
    (["{lm}", "--quality", "needle", "--lengths", "64"], "needle retrieval (single) needs lengths of at least"),
    (["{lm}", "--quality", "--lengths", "4096"], "exceeds the model's 2048 positions (use --allow-beyond-max"),
    (["{bert}", "--quality"], "an encoder predicts no next token"),
    (["{notok}", "--quality"], "tokenizer to read text, and it has none"),
]


@needs_minilm
@pytest.mark.parametrize(("argv", "message"), REFUSALS, ids=[m[:40] for _, m in REFUSALS])
def test_refusals_are_one_line_and_exit_2(capsys, argv: list[str], message: str, refusal_files: Path,
                                          tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    models = tmp_path_factory.getbasetemp() / "refusal-models"
    if not models.exists():
        models.mkdir()
        save_tiny(models / "bert", kind="bert")
        save_tiny(models / "notok", tokenizer=False)
    argv = [a.replace("{lm}", str(tiny_lm)).replace("{files}", str(refusal_files))
            .replace("{bert}", str(models / "bert")).replace("{notok}", str(models / "notok")) for a in argv]
    lengths = [] if "--lengths" in argv else ["--lengths", "128"]
    code, _, err = run_cli(capsys, "sweep", *argv, *lengths, *FAST)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("loading")]
    assert code == 2 and len(lines) == 1, err
    assert message in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("name", ["binary.txt", "latin1.txt", "empty.txt", "fifo", "/dev/zero"])
def test_a_bad_quality_text_is_refused_before_any_model_loads(capsys, monkeypatch, name: str, refusal_files: Path,
                                                              tiny_config_files) -> None:
    """Read as the quality pass reads it, before loading (a fresh demo:smollm2 takes minutes)."""
    import os

    from ctxscope.core.jobs.matrix import ModelSlot

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the quality text was checked")

    monkeypatch.setattr(ModelSlot, "acquire", no_loading)
    fifo = refusal_files / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)  # no writer: an open that blocks would hang here
    text = name if name.startswith("/") else str(refusal_files / name)
    code, _, err = run_cli(capsys, "sweep", str(tiny_config_files["llama"]), "--quality", "--quality-text", text,
                           "--lengths", "128", *FAST)
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"--quality-text {text}: " in err, err
