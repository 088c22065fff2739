"""The panels describe what the plots show (issue 27, items 1 and 11): the Sweep panel the
thread count the run used, the Model panel the model of a run opened from the history or
a file; ``ctxscope open RUN.json`` and ``ctxscope gui RUN.json`` show a run file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ctxscope.core.serialize import write_run
from tests.report.test_reports import make_run
from tests.gui.conftest import set_model, settle

TIMEOUT = 60_000


@pytest.fixture
def app_windows(monkeypatch, qtbot):
    """``ctxscope gui`` / ``open`` build the real window instead of blocking in exec()."""
    import ctxscope.gui.app as app_module

    windows: list = []

    def fake_run_app(spec=None, cfg=None, autorun=False, runs=()):
        window = app_module.build_window(spec, cfg, autorun, runs)
        qtbot.addWidget(window)
        windows.append(window)
        return 0

    monkeypatch.setattr(app_module, "run_app", fake_run_app)
    yield windows
    for window in windows:
        qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
        window.close()


def test_gui_run_without_threads_shows_the_count_it_used(app_windows, qtbot, tiny_config_files) -> None:
    from ctxscope.cli import main
    from ctxscope.gui.sweep_panel import default_threads

    assert main(["gui", str(tiny_config_files["llama"]), "--device", "cpu", "--lengths", "16", "--mode", "prefill",
                 "--min-repeats", "2", "--max-repeats", "2", "--run"]) == 0
    [window] = app_windows
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        pass
    recorded = finished.args[0].header.settings.threads
    # The run used the app's default (one core left to the window), and the panel says so:
    # pressing Run again measures the same thing (it showed 1 while the run used torch's 2).
    assert recorded == default_threads() == window.sweep_panel.threads.value()


def test_the_panel_follows_the_threads_a_run_recorded(window) -> None:
    run = make_run("r1")
    header = replace(run.header, settings=replace(run.header.settings, threads=3))
    window.runner.sweepStarted.emit(header)  # e.g. a remote host with more cores than this one
    assert window.sweep_panel.threads.value() == 3


def test_opening_a_run_describes_its_model_not_the_loaded_one(window, qtbot, tiny_config_files,
                                                               tmp_path: Path) -> None:
    set_model(window, str(tiny_config_files["llama"]), "16")
    with qtbot.waitSignal(window.runner.modelLoaded, timeout=TIMEOUT):
        window.model_panel.load_button.click()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    assert "LlamaForCausalLM" in window.model_panel.info.text()
    other = make_run("20261201-081100-a1b2c3", gpu=None)
    write_run(other, tmp_path / "other.json")
    window.open_run_file(str(tmp_path / "other.json"))
    info = window.model_panel.info.text()
    assert "GPT2LMHeadModel" in info and "LlamaForCausalLM" not in info and "20261201-081100-a1b2c3" in info
    assert "not loaded here" in info
    spec = window.model_panel.spec()
    assert (spec.source, spec.dtype, spec.device) == ("preset:gpt2", "float16", "cuda:0")  # Run measures it again
    assert not window.model_panel.random_weights.isChecked()  # a preset is random by nature, not by choice
    panel = window.sweep_panel  # and the sweep that measured it
    assert panel.lengths.text() == "1k,2k,4k" and panel.modes["decode"].isChecked()
    assert panel.budget.value() == 1.0 and panel.policy.currentIndex() == 0 and not panel.attention.isChecked()


def test_opening_from_history_describes_its_model(window, qtbot, tiny_config_files) -> None:
    set_model(window, str(tiny_config_files["gpt2"]), "16")
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        window.sweep_panel.run_button.click()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    gpt2_run = finished.args[0]
    set_model(window, str(tiny_config_files["llama"]), "16")
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT):
        window.sweep_panel.run_button.click()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    settle(window, qtbot)
    assert "LlamaForCausalLM" in window.model_panel.info.text()
    with qtbot.waitSignal(window.history_controller.opened, timeout=TIMEOUT):
        window.open_stored_run(gpt2_run.id)
    assert "GPT2LMHeadModel" in window.model_panel.info.text() and gpt2_run.id in window.model_panel.info.text()
    assert window.model_panel.source.currentText() == str(tiny_config_files["gpt2"])


def test_open_and_gui_show_run_files(app_windows, tmp_path: Path, capsys) -> None:
    from ctxscope.cli import main

    a, b = make_run("20261201-081100-aaaaaa", gpu=None), make_run("20261201-091100-bbbbbb", gpu=None, attn="eager")
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    assert main(["open", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    assert main(["gui", str(tmp_path / "b.json")]) == 0
    opened, single = app_windows
    assert list(opened.live.shown) == [a.id, b.id]  # the first shown, the second overlaid
    assert a.id in opened.model_panel.info.text()
    assert list(single.live.shown) == [b.id] and "GPT2LMHeadModel" in single.model_panel.info.text()


def test_bad_run_files_are_one_line_and_open_nothing(app_windows, tmp_path: Path, capsys) -> None:
    from ctxscope.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "ctxscope.run/1", "id": 3}')
    assert main(["open", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ctxscope: error:") and err.count("\n") == 1 and "bad.json" in err
    assert main(["open", str(tmp_path / "missing.json")]) == 2
    write_run(make_run("r1"), tmp_path / "r.json")
    assert main(["gui", str(tmp_path / "r.json"), "--run"]) == 2
    assert "is a run file, not a model" in capsys.readouterr().err
    assert app_windows == []
