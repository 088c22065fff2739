"""What a user sees in the Live tab beyond the curves: the panel shows what ran, the
first-launch state, the title, legends, hover read-outs, the memory guard's question
and the thread count."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QPointF
from PySide6.QtWidgets import QMessageBox, QVBoxLayout, QWidget

from tests.gui.conftest import set_model

TIMEOUT = 60_000


def test_first_launch_state(window) -> None:
    panel = window.sweep_panel
    assert "4 lengths: 128 … 1k" in panel.lengths_error.text()  # the check shows before any edit
    assert panel.modes["prefill"].isChecked() and panel.modes["decode"].isChecked()
    assert not panel.modes["forward"].isChecked()  # the default model is a decoder
    # The platform appends the display name ("— ctxscope"): the title must not hold it too.
    assert "ctxscope" not in window.windowTitle()
    legend = [label.text for _, label in window.memory.legend.items]
    assert legend == []  # an empty plot explains nothing, not even "out of memory"


def test_gui_run_shows_what_ran(qtbot, qapp, tiny_config_files, monkeypatch) -> None:
    """`ctxscope gui MODEL --mode prefill --attention --run`: the panel shows prefill
    only and attention ticked, so Run again measures the same thing."""
    import ctxscope.gui.app as app_module
    from ctxscope.cli import main

    windows = []
    monkeypatch.setattr(app_module, "run_app", lambda spec, cfg, autorun: windows.append(
        app_module.build_window(spec, cfg, autorun)) or 0)
    assert main(["gui", str(tiny_config_files["llama"]), "--device", "cpu", "--lengths", "16,32", "--mode", "prefill",
                 "--attention", "--attention-tiles", "8", "--min-repeats", "2", "--max-repeats", "2", "--threads", "1",
                 "--run"]) == 0
    [window] = windows
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        pass
    panel = window.sweep_panel
    assert panel.modes["prefill"].isChecked() and not panel.modes["decode"].isChecked()
    assert panel.attention.isChecked() and panel.attention_tiles.value() == 8
    assert panel.lengths.text() == "16,32" and panel.threads.value() == 1
    assert panel.policy.currentIndex() == 1 and panel.repeats.value() == 2
    run = finished.args[0]
    assert run.header.settings.modes == ("prefill",) and run.header.settings.threads == 1
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    window.close()


def test_thread_count_is_the_panels_and_recorded(window, qtbot, tiny_config_files) -> None:
    import torch

    before = torch.get_num_threads()
    set_model(window, str(tiny_config_files["llama"]), "16")
    window.sweep_panel.threads.setValue(1)
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        window.sweep_panel.run_button.click()
    assert finished.args[0].header.settings.threads == 1
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    assert torch.get_num_threads() == before  # set for the sweep only


@pytest.mark.parametrize(("button", "status"), [(QMessageBox.StandardButton.Yes, "ok"),
                                                (QMessageBox.StandardButton.No, "skipped")])
def test_the_app_asks_before_a_point_predicted_not_to_fit(window, qtbot, tiny_config_files, monkeypatch,
                                                           button, status) -> None:
    from ctxscope.core.jobs import sweep

    monkeypatch.setattr(sweep, "available_bytes", lambda device: 1)  # as if no memory were left
    asked: list[str] = []

    def question(parent, title, text, *args):
        asked.append(text)
        return button

    monkeypatch.setattr(QMessageBox, "question", question)
    set_model(window, str(tiny_config_files["llama"]), "16")
    window.sweep_panel.show_modes(("prefill",))
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        window.sweep_panel.run_button.click()
    [point] = finished.args[0].points
    assert point.status == status
    assert len(asked) == 1 and "L=16" in asked[0] and "predicted to need at least" in asked[0]


def _point(mode: str, length: int, tokens_per_s: float):
    from ctxscope.core.results import Point
    from ctxscope.core.stats import LatencyStats

    return Point(mode=mode, length=length, batch_size=1, status="ok", tokens_per_s=tokens_per_s,
                 latency_ms=LatencyStats.from_samples([1.0, 1.0]))


def test_legend_moves_off_the_data(qtbot) -> None:
    """Prefill throughput falling from the top-left corner (where the legend sat) to the
    bottom-right, decode level in the middle: the legend must go where no point is."""
    from ctxscope.gui.plots import ThroughputPlot

    window = QWidget()  # inside a window, as in the app: a top-level plot widget lingers at exit
    qtbot.addWidget(window)
    plot = ThroughputPlot()
    QVBoxLayout(window).addWidget(plot)
    window.resize(600, 400)
    window.show()
    qtbot.waitExposed(window)
    for length, prefill in ((64, 1000.0), (128, 700.0), (256, 400.0), (512, 100.0)):
        plot.add_point("run", "run", _point("prefill", length, prefill))
        plot.add_point("run", "run", _point("decode", length, 550.0))
    qtbot.wait(50)
    plot.place_legend()
    qtbot.wait(50)
    vb = plot.getPlotItem().vb
    rect = plot.legend.sceneBoundingRect()
    covered = [(p.mode, p.length) for series in plot.series.values() for p in series.ok()
               if rect.adjusted(-4, -4, 4, 4).contains(vb.mapViewToScene(QPointF(*plot._view_xy(p))))]
    assert covered == []


def test_the_hover_read_out_leaves_with_the_mouse(qtbot) -> None:
    from ctxscope.gui.plots import ThroughputPlot

    plot = ThroughputPlot()
    qtbot.addWidget(plot)
    plot.add_point("run", "run", _point("prefill", 64, 1000.0))
    plot.readout.setVisible(True)
    plot.leaveEvent(QEvent(QEvent.Type.Leave))
    assert not plot.readout.isVisible()
