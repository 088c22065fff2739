"""RULER-style retrieval tasks: prompts of exactly L tokens (the answer's room included)
with every needle where its depth puts it, scoring by greedy generation (the cache loop
equals ``generate``), recall and false retrievals (whole words), every trial recorded
with its task, and a wrong-key control that does score false retrievals."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ctxscope.core.quality import generate as generate_mod
from ctxscope.core.quality import tasks as tasks_mod
from ctxscope.core.quality.config import QualityConfig
from ctxscope.core.quality.effective import by_length, effective_of
from ctxscope.core.quality.texts import read_document, sentence_ends, tokenize
from ctxscope.core.serialize import dumps_run, loads_run
from ctxscope.core.jobs.sweep import run_sweep
from tests.conftest import drain, fast_config
from tests.core.quality_fixtures import loaded_lm, needs_minilm, tiny_lm, user_text  # noqa: F401

pytestmark = needs_minilm
MULTI = ("multikey", "multivalue", "multiquery", "vt")


@pytest.fixture(scope="module")
def text_ids(loaded_lm):  # noqa: F811
    from ctxscope.core.attention.text import load_tokenizer

    tok = load_tokenizer(loaded_lm)
    ids = tokenize(read_document("the-great-gatsby"), tok)[:6000]
    return tok, ids, sentence_ends(ids, tok)


@pytest.mark.parametrize("task", MULTI)
def test_task_prompts_are_exactly_l_tokens_with_their_needles(task: str, text_ids) -> None:
    tok, ids, ends = text_ids
    bos = np.asarray([101], dtype=np.int64)
    for depth in (0.0, 50.0, 100.0):
        p = tasks_mod.build(task, "grid", ids, ends, tok, bos, length=600, depth=depth, seed=0, seeds=2, sweep_seed=7)
        assert len(p.ids) + p.max_new == 600 and p.ids[0] == 101  # the BOS first, the answer's room inside L
        text = tok.decode(p.ids.tolist()).lower()
        count = 5 if task == "vt" else 4
        assert len(p.positions) == count
        for start in p.positions:  # every needle starts where it says, as a whole sentence
            needle = tok.decode(p.ids[start:start + 6].tolist()).lower()
            assert needle.startswith("var" if task == "vt" else "one of the special magic numbers")
        values = re.findall(r"\b\d{5,7}\b", text)
        if task == "multikey":
            assert len(p.expected) == 1 and len(p.distractors) == 3 and p.key in text.replace(" - ", "-")
            assert sorted(values) == sorted(p.expected + p.distractors)
            assert abs(p.positions[0] / len(p.ids) - depth / 100) < 0.15  # the asked needle sits at the depth
        elif task == "vt":
            names = [n.lower() for n in p.expected]
            assert [text.index(f"var {n} =") for n in names] == sorted(text.index(f"var {n} =") for n in names)
            assert set(values) == {p.key}  # the one value, planted once and named in the question
        else:
            assert len(p.expected) == 4 and not p.distractors and sorted(values) == sorted(p.expected)
    adjacent = tasks_mod.build(task, "adjacent", ids, ends, tok, bos, length=600, depth=None, seed=0, seeds=2,
                               sweep_seed=7)
    assert len(adjacent.ids) < 200  # the needles and the question, no haystack


def test_wrong_key_plants_needles_and_asks_about_another_key(text_ids) -> None:
    tok, ids, ends = text_ids
    p = tasks_mod.build("multikey", "wrong-key", ids, ends, tok, np.zeros(0, dtype=np.int64), length=500, depth=None,
                        seed=1, seeds=2, sweep_seed=0)
    text = tok.decode(p.ids.tolist()).lower()
    assert not p.expected and len(p.distractors) == 4 and all(v in text for v in p.distractors)
    asked = text.rsplit("question", 1)[1]
    assert p.key.split("-")[1] in asked and all(v not in asked for v in p.distractors)


def test_scoring_is_recall_of_whole_words_and_false_retrievals() -> None:
    p = tasks_mod.TaskPrompt(np.zeros(1, dtype=np.int64), 8, ("1234567", "7654321"), ("5555555",), "k", (0,))
    assert generate_mod.score(" 1234567 and 7654321.", p) == (True, 1.0, 0)
    assert generate_mod.score(" 1234567, 5555555", p) == (False, 0.5, 1)
    assert generate_mod.score(" 12345678 and 76543210", p) == (False, 0.0, 0)  # not inside a longer number
    wrong = tasks_mod.TaskPrompt(np.zeros(1, dtype=np.int64), 8, (), ("5555555",), "k", (0,))
    assert generate_mod.score(" 5555555.", wrong) == (None, None, 1)


def test_greedy_generation_equals_generate(loaded_lm, text_ids) -> None:  # noqa: F811
    tok, ids, _ = text_ids
    prompt = ids[:120]
    answer = generate_mod.greedy(loaded_lm.model, loaded_lm.device, prompt, 6, tok)
    with torch.inference_mode():
        out = loaded_lm.model.generate(torch.from_numpy(prompt).unsqueeze(0), max_new_tokens=6, do_sample=False,
                                       pad_token_id=0)
    assert answer == tok.decode(out[0, 120:].tolist())


@pytest.mark.slow
def test_every_task_is_recorded_per_trial_and_round_trips(loaded_lm, user_text) -> None:  # noqa: F811
    cfg = QualityConfig(kinds=("needle",), text=str(user_text), depths=(0.0, 100.0), seeds=1,
                        tasks=("single", *MULTI))
    _, run = drain(run_sweep(loaded_lm, fast_config((360,), modes=("prefill",), quality=cfg)))
    trials = run.quality.needle
    assert len(trials) == 5 * (1 + 2) + 1 + 1  # per task: adjacent + 2 depths; no key; wrong key
    assert {t.task for t in trials} == {"single", *MULTI} and all(t.status == "ok" for t in trials)
    grid = [t for t in trials if t.kind == "grid"]
    assert all(t.length == 360 for t in grid)
    assert all(t.recall is not None and isinstance(t.answer, str) for t in grid if t.task != "single")
    [wrong] = [t for t in trials if t.kind == "wrong-key"]
    assert wrong.task == "multikey" and not wrong.expected and len(wrong.distractors) == 4
    again = loads_run(dumps_run(run))
    assert again.quality == run.quality
    eff = effective_of(run.quality, run.header.settings.quality)
    assert [task for task, _ in eff.tasks] == ["single", *MULTI] and "5 tasks' average" in eff.line()
    assert run.header.settings.quality["tasks"] == ["single", *MULTI]


def test_the_wrong_key_control_scores_false_retrievals(loaded_lm, user_text, monkeypatch) -> None:  # noqa: F811
    """A "model" that answers with the first number it read: it retrieves the asked key
    only when that needle comes first, and the wrong-key control catches it every time."""
    from ctxscope.core.attention.text import load_tokenizer

    tok = load_tokenizer(loaded_lm)

    def first_number(model, device, ids, max_new, tokenizer, make_cache=None):
        return " " + re.findall(r"\b\d{7}\b", tok.decode(ids.tolist()))[0] + "."

    monkeypatch.setattr(generate_mod, "greedy", first_number)
    cfg = QualityConfig(kinds=("needle",), text=str(user_text), depths=(0.0, 50.0), seeds=2, tasks=("multikey",))
    _, run = drain(run_sweep(loaded_lm, fast_config((400,), modes=("prefill",), quality=cfg)))
    wrong = by_length(run.quality.needle, "wrong-key")[400]
    assert wrong.n == 2 and wrong.false == 2  # every wrong-key answer is a planted value
    cells = {t.depth: t for t in run.quality.needle if t.kind == "grid" and t.seed == 0}
    assert cells[0.0].found and cells[0.0].false_hits == 0  # the asked needle came first
    assert not cells[50.0].found and cells[50.0].false_hits == 1  # a distractor came first
