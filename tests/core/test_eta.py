"""The sweep's ETA (issue 27, item 4): the first estimate was 3-4x too long because every
pass was weighted by its length alone and the first point's warm-up was extrapolated."""

from __future__ import annotations

import math

from ctxscope.core.jobs.eta import Eta, Policy
from ctxscope.core.events import Progress
from ctxscope.core.jobs.sweep import run_sweep
from tests.conftest import fast_config

POLICY = Policy(warmup=1, min_repeats=5, max_repeats=100, budget_s=2.0, decode_cap=1024)


def schedule(lengths=(128, 256, 512, 1024), warm_up_s: float = 6.0) -> list[tuple[int, str, float, float | None,
                                                                                 int | None, str]]:
    """A CPU sweep as it runs (GPT-2-like costs): (L, mode, wall seconds, call s, calls, status).
    Prefill calls grow with L, so the budget stops short ones; a decode step is cheap but
    its point prefills L untimed first; decode at 1024 is skipped; the first point
    carries a one-time warm-up."""
    out: list[tuple[int, str, float, float | None, int | None, str]] = []
    for n in lengths:
        call = 0.137 * (n / 128) ** 1.1
        calls = min(100, max(5, math.ceil(2.0 / call)))
        out.append((n, "prefill", (1 + calls) * call + 0.02, call, calls, "ok"))
        if n >= 1024:
            out.append((n, "decode", 0.001, None, None, "skipped"))
            continue
        step = 0.040 * (1 + n / 4096)
        steps = min(100, max(5, math.ceil(2.0 / step)))
        out.append((n, "decode", call + (1 + steps) * step + 0.02, step, steps, "ok"))
    n, mode, seconds, call, calls, status = out[0]
    out[0] = (n, mode, seconds + warm_up_s, call, calls, status)
    return out


def replay(sched) -> list[tuple[float, float | None, float | None]]:
    """(true remaining, new ETA, the old length-weighted ETA) before each entry."""
    plan = [(n, mode) for n, mode, *_ in sched]
    eta = Eta(plan, POLICY)
    total = sum(n for n, _ in plan)
    now, done_weight, out = 0.0, 0, []
    for i, (n, mode, seconds, call, calls, status) in enumerate(sched):
        eta.start(i, now)
        old = now / done_weight * (total - done_weight) if done_weight else None
        out.append((sum(s[2] for s in sched[i:]), eta.remaining(), old))
        eta.measured(mode, status, call * 1e3 if call is not None else None, calls)
        now += seconds
        done_weight += n
    return out


def test_first_eta_is_realistic_on_a_synthetic_schedule() -> None:
    rows = replay(schedule())
    assert rows[0][1] is None  # nothing to scale from before the first point
    true, new, old = rows[1]  # the first ETA shown, after the first prefill
    assert old is not None and new is not None
    assert old / true > 3  # the old weighting: decode = prefill, skipped points and warm-up extrapolated
    assert 0.75 < new / true < 1.25, (new, true)
    for true, new, _ in rows[1:]:  # and every later one
        assert new is not None and abs(new - true) <= max(0.25 * true, 0.5), (new, true)
    assert rows[-1][1] == 0.0  # the skipped decode at 1024 costs nothing


def test_points_that_will_be_skipped_cost_nothing() -> None:
    plan = [(n, m) for n in (128, 256, 512) for m in ("prefill", "decode")]
    eta = Eta(plan, Policy(1, 5, 5, 0.0, decode_cap=256))
    eta.start(0, 0.0)
    eta.measured("prefill", "ok", 100.0, 5)
    eta.start(1, 0.6)
    eta.measured("decode", "ok", 10.0, 5)
    eta.start(2, 0.7)
    eta.measured("prefill", "oom")  # longer prefills are skipped; decode beyond the cap too
    eta.start(3, 0.8)
    assert eta.remaining() == 0.0


def test_untimed_passes_scale_their_own_durations() -> None:
    plan = [(n, m) for n in (128, 256, 512) for m in ("prefill", "attention")]
    eta = Eta(plan, Policy(1, 5, 5, 0.0))
    clock = 0.0
    for i, (n, mode) in enumerate(plan[:4]):
        eta.start(i, clock)
        if mode == "prefill":
            eta.measured(mode, "ok", n / 128 * 10.0, 5)  # 10 ms per call per 128 tokens: 60 ms a point
            clock += 6 * n / 128 * 0.01
        else:
            clock += 4.0 * (n / 128) ** 2  # the capture grows as L²
    eta.start(4, clock)
    remaining = eta.remaining()
    assert remaining is not None and abs(remaining - (0.24 + 64.0)) < 0.01  # prefill 512 + attention 512 (L² seen)


def test_run_sweep_reports_the_model(tiny_config_files) -> None:
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.spec import ModelSpec

    # The tiny GPT-2 has 256 positions: decode at 256 is skipped, and the ETA says so.
    loaded = load_model(ModelSpec(str(tiny_config_files["gpt2"]), device="cpu"))
    events = list(run_sweep(loaded, fast_config((128, 256))))
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(p.length, p.mode) for p in progress][-1] == (256, "decode")
    assert progress[0].eta_s is None and all(p.eta_s is not None for p in progress[1:])
    assert progress[-1].eta_s == 0.0
