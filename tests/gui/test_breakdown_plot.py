"""The Sweep panel's breakdown tick box and the Live tab's Breakdown plot, through the
real window and worker thread."""

from __future__ import annotations

import numpy as np
import pytest

from tests.gui.conftest import set_model, settle

TIMEOUT = 60_000


@pytest.mark.slow  # a real sweep through the window: tens of seconds on shared cores
def test_breakdown_tick_box_fills_the_plot(window, qtbot, tiny_config_files) -> None:
    set_model(window, str(tiny_config_files["llama"]), "16,64")
    plot = window.live.breakdown
    assert not plot.isVisible()  # a run without a breakdown keeps the Live tab as it was
    window.sweep_panel.breakdown.setChecked(True)
    assert window.sweep_panel.config().breakdown
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        window.sweep_panel.run_button.click()
    run = finished.args[0]
    window.flush_views()  # the last updates are still a tick each behind the signal
    assert run.header.settings.breakdown and all(p.breakdown for p in run.ok_points())
    qtbot.waitUntil(lambda: plot.has_data() and len(plot._rows()) == 2, timeout=TIMEOUT)
    assert plot.isVisible() and window.live.breakdown_controls.isVisible()
    tops = plot.curves["other"][1]  # the stack's top: shares add up to 100 %
    assert np.allclose(tops, 100.0)
    assert list(plot.curves["other"][0]) == [16.0, 64.0]
    point = run.ok_points("prefill")[-1]
    assert "attention kernel:" in plot.describe(point) and "L=64" in plot.describe(point)
    window.live.breakdown_share.setChecked(False)  # stacked time: the top is the attributed ms
    attributed = [p.breakdown["attributed_ms"] for p in run.ok_points("prefill")]
    assert np.allclose(plot.curves["other"][1], attributed)
    window.live.breakdown_mode.setCurrentText("decode")
    assert np.allclose(plot.curves["other"][1], [p.breakdown["attributed_ms"] for p in run.ok_points("decode")])
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    settle(window, qtbot)
    window.live.clear()
    assert not plot.has_data() and not plot.isVisible()
