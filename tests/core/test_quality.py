"""Quality passes inside a sweep: the same target windows at every context, inputs that
are slices of the text (never tiled), only the target positions' logits, needle prompts
of exactly L tokens with both controls, cancel between forward passes, OOM as data."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import ctxscope.core.quality.targets as targets_mod
from ctxscope.core.errors import BadInputError
from ctxscope.core.quality.config import QualityConfig
from ctxscope.core.quality.loss import place_windows
from ctxscope.core.quality.records import LossPoint, NeedleTrial, QualityPoint
from ctxscope.core.quality.texts import read_document, tokenize
from ctxscope.core.jobs.sweep import drive, run_sweep
from tests.conftest import drain, fast_config
from tests.core.quality_fixtures import loaded_lm, needs_minilm, tiny_lm, user_text  # noqa: F401

pytestmark = needs_minilm


def _quality(text, **kw) -> QualityConfig:
    defaults = dict(text=str(text), target_tokens=16, windows=3, depths=(0.0, 50.0, 100.0), seeds=2)
    defaults.update(kw)
    return QualityConfig(**defaults)


@pytest.fixture
def calls(monkeypatch):
    """Every (model input, targets) pair the quality passes score, and the logits'
    shapes: the spy wraps the one function that calls the model."""
    seen: list[tuple[np.ndarray, np.ndarray, tuple[int, ...]]] = []
    real = targets_mod.last_logits

    def spy(model, ids, keep, **kw):
        logits = real(model, ids, keep, **kw)
        seen.append((ids[0].numpy().copy(), keep, tuple(logits.shape)))
        return logits

    monkeypatch.setattr(targets_mod, "last_logits", spy)
    return seen


def test_target_windows_are_identical_at_every_context(loaded_lm, user_text, calls) -> None:
    from ctxscope.core.attention.text import load_tokenizer

    cfg = _quality(user_text, kinds=("loss",))
    events, run = drain(run_sweep(loaded_lm, fast_config((32, 64, 128), quality=cfg)))
    ids = tokenize(read_document(str(user_text)), load_tokenizer(loaded_lm))
    starts = run.header.settings.quality["window_starts"]
    assert starts == list(place_windows(len(ids), 16, 3, 128)) and len(set(starts)) == 3
    assert [p.context for p in run.quality.loss] == [32, 64, 128] and all(p.status == "ok" for p in run.quality.loss)
    assert [e.item for e in events if isinstance(e, QualityPoint)] == list(run.quality.loss)
    assert len(calls) == 9  # one forward per window per context
    for i, (inputs, keep, shape) in enumerate(calls):
        context, start = (32, 64, 128)[i // 3], starts[i % 3]
        # The input is exactly the text before the window plus the window's first K-1
        # tokens: one contiguous slice of the document, never tiled or padded.
        assert np.array_equal(inputs, ids[start - context:start + 15])
        assert keep == 16 and shape == (1, 16, 30522)  # only the K target positions' logits
    # The targets themselves: the same 16 tokens at every context.
    targets = {(c, s): tuple(ids[s:s + 16]) for c in (32, 64, 128) for s in starts}
    assert all(targets[(32, s)] == targets[(c, s)] for c in (64, 128) for s in starts)
    # Timed points are unchanged by the untimed passes.
    assert [p.status for p in run.points] == ["ok"] * 6


def test_loss_refuses_lengths_the_text_cannot_supply(loaded_lm, tmp_path, calls) -> None:
    from ctxscope.core.attention.text import load_tokenizer

    short = tmp_path / "short.txt"
    short.write_text(read_document("the-great-gatsby").text[5000:9000], encoding="utf-8")
    ids = tokenize(read_document(str(short)), load_tokenizer(loaded_lm))
    longest = len(ids) - 3 * 16
    with pytest.raises(BadInputError, match=f"contexts up to {longest:,} tokens, not {longest + 1:,}.*never tiled"):
        next(run_sweep(loaded_lm, fast_config((64, longest + 1), quality=_quality(short, kinds=("loss",)))))
    assert calls == []  # refused before any forward pass
    # The longest it supports runs, and every input is still one slice of the text.
    _, run = drain(run_sweep(loaded_lm, fast_config((longest,), modes=("prefill",),
                                                    quality=_quality(short, kinds=("loss",)))))
    starts = run.header.settings.quality["window_starts"]
    assert starts[0] == longest and starts[-1] + 16 <= len(ids) and run.quality.loss[0].status == "ok"
    for (inputs, _, _), start in zip(calls, starts):
        assert np.array_equal(inputs, ids[start - longest:start + 15])


def test_only_target_logits_and_the_fallback_agree(loaded_lm) -> None:
    model = loaded_lm.model
    ids = torch.randint(0, 30522, (1, 40), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = model(input_ids=ids).logits[:, -8:].float()
        kept = targets_mod.last_logits(model, ids, 8)
        head = targets_mod.last_logits(model, ids, 8, use_keep=False)
    assert kept.shape == (1, 8, 30522)
    torch.testing.assert_close(kept, full)
    torch.testing.assert_close(head, full, rtol=1e-5, atol=1e-5)


def test_needle_prompts_are_exactly_l_tokens_with_both_controls(loaded_lm, user_text, calls) -> None:
    cfg = _quality(user_text, kinds=("needle",))
    _, run = drain(run_sweep(loaded_lm, fast_config((160, 320), quality=cfg)))
    trials = run.quality.needle
    grid = [t for t in trials if t.kind == "grid"]
    assert {(t.length, t.depth) for t in grid} == {(n, d) for n in (160, 320) for d in (0.0, 50.0, 100.0)}
    assert len(grid) == 12 and all(len(t.key) == 5 and t.key.isdigit() for t in trials)
    assert len({t.key for t in grid}) > 6  # random keys, not one key reused
    adjacent = [t for t in trials if t.kind == "adjacent"]
    assert len(adjacent) == 2 and all(t.length < 40 for t in adjacent)  # once, no haystack
    assert sorted(t.length for t in trials if t.kind == "no-key") == [160, 160, 320, 320]
    assert all(t.status == "ok" and t.key_logprob < 0 and isinstance(t.found, bool) for t in trials)
    lengths = sorted({len(c[0]) for c in calls if len(c[0]) > 40})
    assert lengths == [160, 320]  # each prompt (with the key's forced tokens) is exactly L
    depth = {t.depth: t.position for t in grid if t.length == 320 and t.seed == 0}
    assert depth[0.0] == 0 and 100 < depth[50.0] < 220 and depth[100.0] > 250


def test_needle_score_matches_greedy_decoding(loaded_lm) -> None:
    """Teacher-forced arg-max == greedy generation: compare with model.generate."""
    from ctxscope.core.attention.text import load_tokenizer
    from ctxscope.core.quality import needle

    tok = load_tokenizer(loaded_lm)
    ids = tokenize(read_document("the-great-gatsby"), tok)[:4000]
    prompt = needle.build_prompt(ids, np.ones_like(ids, dtype=bool), tok, kind="grid", length=200, depth=50.0,
                                 seed=0, seeds=1, sweep_seed=0)
    found, logprob, answer = needle.score(loaded_lm.model, loaded_lm.device, prompt, tok)
    n_key = len(prompt.key_ids)
    prefix = torch.from_numpy(prompt.ids[:len(prompt.ids) - (n_key - 1)]).unsqueeze(0)
    with torch.inference_mode():
        out = loaded_lm.model.generate(prefix, max_new_tokens=n_key, do_sample=False, pad_token_id=0)
    generated = out[0, prefix.shape[1]:].tolist()
    assert found == (generated == prompt.key_ids.tolist())
    if not found:
        wrong = next(j for j, (a, b) in enumerate(zip(generated, prompt.key_ids)) if a != b)
        assert answer == tok.decode(prompt.key_ids.tolist()[:wrong] + [generated[wrong]])


def test_cancel_between_forward_passes(loaded_lm, user_text, calls) -> None:
    stop = threading.Event()
    seen: list = []

    def on_event(event) -> None:
        seen.append(event)
        if isinstance(event, QualityPoint) and isinstance(event.item, NeedleTrial):
            stop.set()  # in the middle of the needle trials of the first length

    run = drive(run_sweep(loaded_lm, fast_config((160, 320), quality=_quality(user_text)), stop=stop), on_event)
    assert run.status == "cancelled"
    assert len(run.quality.needle) == 1 and [p.context for p in run.quality.loss] == [160]
    assert len(calls) == 3 + 1  # three loss windows and one trial: stopped before the next forward
    assert {p.length for p in run.points} == {160}


def test_oom_in_a_quality_pass_is_a_recorded_point(loaded_lm, user_text, monkeypatch) -> None:
    import ctxscope.core.quality.loss as loss_mod

    real = loss_mod.window_nll

    def window_nll(model, device, ids, start, context, k, **kw):
        if context >= 64:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(model, device, ids, start, context, k, **kw)

    monkeypatch.setattr(loss_mod, "window_nll", window_nll)
    _, run = drain(run_sweep(loaded_lm, fast_config((32, 64, 128), quality=_quality(user_text, kinds=("loss",)))))
    assert [(p.context, p.status) for p in run.quality.loss] == [(32, "ok"), (64, "oom"), (128, "skipped")]
    assert "out of memory" in run.quality.loss[1].error and run.status == "complete"
    assert all(p.status == "ok" for p in run.points)
    _, again = drain(run_sweep(loaded_lm, fast_config((32, 64, 128), continue_after_oom=True,
                                                      quality=_quality(user_text, kinds=("loss",)))))
    assert [p.status for p in again.quality.loss] == ["ok", "oom", "oom"]


def test_lengths_beyond_the_positions_are_skipped_unless_allowed(tmp_path, user_text) -> None:
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.spec import ModelSpec
    from tests.core.quality_fixtures import save_tiny

    loaded = load_model(ModelSpec(str(save_tiny(tmp_path / "short", max_positions=128)), device="cpu"))
    cfg = _quality(user_text, kinds=("loss",))
    _, run = drain(run_sweep(loaded, fast_config((64, 128), modes=("prefill",), quality=cfg)))
    assert [(p.context, p.status) for p in run.quality.loss] == [(64, "ok"), (128, "skipped")]
    assert "143 positions, beyond the model's 128 (--allow-beyond-max" in run.quality.loss[1].error
    _, run = drain(run_sweep(loaded, fast_config((64, 128), modes=("prefill",), allow_beyond_max=True, quality=cfg)))
    assert [p.status for p in run.quality.loss] == ["ok", "ok"]


def test_windows_never_overlap_or_pass_the_end_of_a_short_second_half(loaded_lm, tmp_path) -> None:
    """A text whose second half is shorter than the windows: they were placed from half
    the text (``place_windows(1999, 256, 4, 256)`` gave (996, 1246, 1496, 1746): the last
    past the end, every loss point an error); now packed at its end, and a length the
    text cannot supply is refused up front with the longest it supplies."""
    assert place_windows(1999, 256, 4, 256) == (975, 1231, 1487, 1743)
    for n in range(1100, 2600, 37):
        for longest in (1, 100, 300):
            if longest > n - 4 * 256:
                continue
            starts = place_windows(n, 256, 4, longest)
            assert starts[0] >= longest and starts[-1] + 256 <= n and all(b - a >= 256 for a, b in zip(starts, starts[1:]))
    with pytest.raises(BadInputError, match="contexts up to 975 tokens, not 976"):
        place_windows(1999, 256, 4, 976)
    # End to end: a text whose second half is shorter than 3 × 16 target tokens.
    from ctxscope.core.attention.text import load_tokenizer

    tok = load_tokenizer(loaded_lm)
    words = read_document("the-great-gatsby").text.split()
    short = tmp_path / "short.txt"
    short.write_text(" ".join(words[:60]), encoding="utf-8")
    n = len(tokenize(read_document(str(short)), tok))
    assert n // 2 < 3 * 16 <= n - 16  # the old placement would have run past the end
    cfg = _quality(short, kinds=("loss",))
    _, run = drain(run_sweep(loaded_lm, fast_config((16,), modes=("prefill",), quality=cfg)))
    assert [p.status for p in run.quality.loss] == ["ok"]
    starts = run.header.settings.quality["window_starts"]
    assert starts[-1] + 16 <= n and all(b - a >= 16 for a, b in zip(starts, starts[1:]))


def test_a_model_that_expects_bos_gets_it_before_every_window_and_prompt(tmp_path, user_text, monkeypatch) -> None:
    from ctxscope.core.attention.text import load_tokenizer
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.spec import ModelSpec
    from tests.core.quality_fixtures import save_tiny

    loaded = load_model(ModelSpec(str(save_tiny(tmp_path / "bos", bos=True)), device="cpu"))
    tok = load_tokenizer(loaded)
    assert tok("a")["input_ids"][0] == tok.bos_token_id == 101  # what its tokenizer does to a text
    seen: list[np.ndarray] = []
    real = targets_mod.last_logits
    monkeypatch.setattr(targets_mod, "last_logits",
                        lambda model, ids, keep, **kw: seen.append(ids[0].numpy().copy()) or real(model, ids, keep, **kw))
    cfg = _quality(user_text, depths=(50.0,), seeds=1)
    _, run = drain(run_sweep(loaded, fast_config((160,), modes=("prefill",), quality=cfg)))
    ids = tokenize(read_document(str(user_text)), tok)
    starts = run.header.settings.quality["window_starts"]
    assert run.header.settings.quality["bos"] == 101
    loss_inputs, needle_inputs = seen[:3], seen[3:]
    for inputs, start in zip(loss_inputs, starts):  # BOS, then the same 160 tokens of context and the targets
        assert inputs[0] == 101 and np.array_equal(inputs[1:], ids[start - 160:start + 15])
    assert all(p.status == "ok" for p in run.quality.loss + run.quality.needle)
    assert all(inputs[0] == 101 for inputs in needle_inputs)
    assert sorted(len(x) for x in needle_inputs if len(x) > 60) == [160, 160]  # still exactly L with the BOS
