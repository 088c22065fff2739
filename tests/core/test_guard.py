"""The memory guard: points that cannot fit are skipped with a reason before they start."""

from __future__ import annotations

import time

import psutil
import pytest

from ctxscope.core.jobs import sweep
from ctxscope.core.predict.guard import activation_floor
from ctxscope.core.jobs.sweep import run_sweep
from tests.conftest import drain, fast_config

HUGE = 1 << 30  # 1024m tokens: the largest length the parser accepts


def test_a_point_that_cannot_fit_is_skipped_before_it_starts(loaded_llama) -> None:
    """Real RAM: a 1024m-token prefill of even the tiny Llama needs > 1 TiB (a lower
    bound), more than any machine here has; it is skipped in milliseconds with the
    reason, and the lengths that fit are measured as usual."""
    assert psutil.virtual_memory().available < 2**40
    t0 = time.perf_counter()
    _, run = drain(run_sweep(loaded_llama, fast_config((16, HUGE), allow_beyond_max=True)))
    assert time.perf_counter() - t0 < 60
    by = {(p.mode, p.length): p for p in run.points}
    assert by[("prefill", 16)].status == "ok" and by[("decode", 16)].status == "ok"
    for mode in ("prefill", "decode"):
        point = by[(mode, HUGE)]
        assert point.status == "skipped"
        assert "predicted to need at least" in point.error and "available on cpu" in point.error
        assert "--force" in point.error
    assert run.status == "complete"


def test_force_and_confirm_run_the_point_anyway(loaded_llama, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep, "available_bytes", lambda device: 1)  # as if the machine had no memory left
    _, run = drain(run_sweep(loaded_llama, fast_config((16,), modes=("prefill",))))
    assert run.points[0].status == "skipped"
    _, run = drain(run_sweep(loaded_llama, fast_config((16,), modes=("prefill",), force=True)))
    assert run.points[0].status == "ok" and run.header.settings.force
    asked = []
    _, run = drain(run_sweep(loaded_llama, fast_config((16,), modes=("prefill",)),
                             confirm=lambda check: asked.append(check) or True))
    assert run.points[0].status == "ok"
    assert [(c.mode, c.length) for c in asked] == [("prefill", 16)] and asked[0].need_bytes > asked[0].available_bytes


def test_the_floor() -> None:
    """Residual + normed input (2·hidden) and one MLP intermediate per token; eager adds
    one layer's heads × L × L scores; GPT-2's unset n_inner means 4 × hidden."""
    from transformers import GPT2Config, LlamaConfig

    llama = LlamaConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4)
    assert activation_floor(llama, 64, 4, 4096, 2, "float32", "sdpa") == 2 * 4096 * (2 * 64 + 128) * 4
    assert activation_floor(llama, 64, 4, 4096, 1, "bfloat16", "eager") == 4096 * 256 * 2 + 4 * 4096 * 4096 * 2
    gpt2 = GPT2Config(n_embd=64, n_head=4)
    assert activation_floor(gpt2, 64, 4, 10, 1, "float32", "sdpa") == 10 * (2 * 64 + 256) * 4
