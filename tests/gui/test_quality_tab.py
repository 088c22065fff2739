"""The Quality tab: filled live by a sweep with quality passes (a tiny checkpoint with a
real tokenizer), cancel between forward passes, a one-line note for a model quality does
not apply to, reopened from the history, and overlaid in Compare."""

from __future__ import annotations

from pathlib import Path

from tests.core.quality_fixtures import needs_minilm, tiny_lm, user_text  # noqa: F401
from tests.gui.conftest import set_model, settle

pytestmark = needs_minilm


def _tick_quality(window, text: Path) -> None:
    options = window.sweep_panel.quality
    options.enabled.setChecked(True)
    options.text.setCurrentText(str(text))


def test_quality_tab_fills_live_and_comes_back_from_history(window, qtbot, tiny_lm, user_text) -> None:
    set_model(window, str(tiny_lm), "128,256")
    _tick_quality(window, user_text)
    view = window.quality
    seen: list[tuple[bool, int, int]] = []  # (running, loss points drawn, needle cells filled) per arrival

    def drawn() -> int:
        x = view.loss_plot.curve.getData()[0]
        return 0 if x is None else len(x)

    window.runner.qualityReady.connect(lambda _: seen.append((window.runner.busy, drawn(), len(view.result.needle))))
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=120_000) as finished:
        window.sweep_panel.run_button.click()
    run = finished.args[0]
    assert run.quality is not None and [p.context for p in run.quality.loss] == [128, 256]
    # Live: every record arrived while the sweep ran and was drawn at once.
    assert len(seen) == len(run.quality.loss) + len(run.quality.needle) and all(busy for busy, _, _ in seen)
    assert seen[0] == (True, 1, 0) and seen[-1][1] == 2 and seen[-1][2] == len(run.quality.needle)
    window.tabs.setCurrentWidget(view)
    assert view.summary.text().startswith("claimed 2,048 · fits: not measured · effective:")
    depths = run.header.settings.quality["depths"]
    assert view.needle.rowCount() == len(depths) + 2 and view.needle.columnCount() == 2  # depths, all, no key
    assert view.needle.verticalHeaderItem(len(depths)).text() == "all depths (95 %)"
    assert view.needle.verticalHeaderItem(len(depths) + 1).text() == "no key (chance)"
    assert not view.task.isVisibleTo(view)  # one task: no selector
    assert "key right before the question" in view.controls.text()
    assert list(view.tradeoff_plot.loss.getOriginalDataset()[0]) == [128, 256]
    assert len(view.tradeoff_plot.cost.getData()[0]) == 2  # prefill latency beside the loss
    # Reopened from the history, the tab shows the stored results.
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=60_000)
    window._clear_views()
    assert view.hint.isVisibleTo(view) and not view.result.loss
    window.open_stored_run(run.id)
    settle(window, qtbot)
    assert view.result == run.quality and view.summary.text().startswith("claimed 2,048")
    # Compare: two runs' losses overlaid with the perplexity ratio.
    window.compare.tick([run.id])
    settle(window, qtbot)


def test_cancel_during_quality_keeps_what_was_measured(window, qtbot, tiny_lm, user_text) -> None:
    set_model(window, str(tiny_lm), "128,256,512")
    _tick_quality(window, user_text)
    window.runner.qualityReady.connect(lambda _: window.sweep_panel.cancel_button.click())
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=120_000) as finished:
        window.sweep_panel.run_button.click()
    run = finished.args[0]
    assert run.status == "cancelled"
    # The worker stops at the next check between forward passes (a few tiny passes may
    # finish while the click travels to it): far from the 3 + 3 × 18 + 3 of a whole run.
    assert 1 <= len(run.quality.loss) + len(run.quality.needle) < 10 and 512 not in {p.length for p in run.points}
    assert window.quality.result == run.quality
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=60_000)
    assert window.sweep_panel.run_button.isEnabled() and not window.sweep_panel.cancel_button.isEnabled()


def test_a_model_quality_does_not_apply_to_gets_one_note(window, qtbot, tiny_config_files) -> None:
    set_model(window, str(tiny_config_files["llama"]), "32")  # random weights
    window.sweep_panel.quality.enabled.setChecked(True)
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=60_000) as finished:
        window.sweep_panel.run_button.click()
    run = finished.args[0]
    assert run.status == "complete" and all(p.status == "ok" for p in run.points)  # the sweep itself ran
    assert run.quality is not None and not run.quality.loss and not run.quality.needle
    assert "random weights" in window.quality.summary.text()
    assert not window.quality.content.isVisibleTo(window.quality)


def test_compare_overlays_quality(window, qtbot, tiny_lm, user_text) -> None:
    from dataclasses import replace

    from ctxscope.core.quality.records import LossPoint, QualityResult
    from tests.report.test_quality_report import _quality_run

    a = _quality_run()
    b = replace(a, header=replace(a.header, id="r2"), quality=QualityResult(
        loss=tuple(LossPoint(p.context, "ok", window_nll=tuple(v + 0.1 for v in p.window_nll)) for p in a.quality.loss),
        needle=a.quality.needle))
    window.compare.add_file_run(a, None)
    window.compare.add_file_run(b, None)
    window.tabs.setCurrentWidget(window.compare)
    quality = window.compare.quality
    qtbot.waitUntil(lambda: quality.isVisibleTo(window.compare), timeout=10_000)
    assert set(quality.curves) == {"r1", "r2"}
    texts = [quality.table.item(r, c).text() for r in range(quality.table.rowCount())
             for c in range(quality.table.columnCount()) if quality.table.item(r, c)]
    assert "×1.105" in texts  # perplexity ratio to the baseline: exp(0.1)
    assert "claimed 8,192 · fits 3,000" in quality.lines.text()


def test_fits_comes_from_a_max_context_search_of_the_same_model(window) -> None:
    from ctxscope.core.quality.config import QualityConfig
    from ctxscope.core.spec import ModelSpec, SweepConfig

    spec = ModelSpec("demo:smollm2", device="cpu")
    cfg = SweepConfig(lengths=(128,), quality=QualityConfig())
    window.quality.remember_fit(spec, 6144)
    assert window.quality.with_fit(spec, cfg).quality.fits == 6144
    assert window.quality.with_fit(ModelSpec("demo:smollm2", device="cuda"), cfg).quality.fits is None
    given = SweepConfig(lengths=(128,), quality=QualityConfig(fits=1000))
    assert window.quality.with_fit(spec, given).quality.fits == 1000  # what the user gave wins


def test_the_tab_shows_each_task_and_the_wrong_key_control(window, qtbot) -> None:
    from tests.report.test_quality_report import _tasks_run

    run = _tasks_run()
    view = window.quality
    view.show_run(run)
    window.tabs.setCurrentWidget(view)
    assert view.task.isVisibleTo(view) and [view.task.itemText(i) for i in range(view.task.count())] == [
        "single", "multikey"]
    assert "2 tasks' average" in view.summary.text() and "multikey below 90% at 256" in view.controls.text()
    view.task.setCurrentText("multikey")
    rows = [view.needle.verticalHeaderItem(i).text() for i in range(view.needle.rowCount())]
    assert rows == ["50%", "all depths (95 %)", "wrong key: value returned"]
    assert view.needle.item(0, 0).text() == "4/20" and view.needle.item(1, 0).text() == "4/20 · 8%–42%"
    assert view.needle.item(2, 0).text() == "3/3"  # every wrong-key answer was a planted value
    assert "said '7654321.'" in view.needle.item(0, 0).toolTip()
