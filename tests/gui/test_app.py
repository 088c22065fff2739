"""The real window and worker thread, driven like a user: run, cancel, OOM, bad input,
history, files, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ctxscope.core.paths import database_path
from ctxscope.store import RunStore
from tests.gui.conftest import set_model, settle

TIMEOUT = 60_000


def plotted(plot, mode: str) -> list[int]:
    """Lengths of the ok points a plot holds for ``mode`` (first run)."""
    for (_, m), series in plot.series.items():
        if m == mode:
            return [p.length for p in series.ok()]
    return []


def curve_x(plot, mode: str) -> list[float]:
    for (_, m), series in plot.series.items():
        if m == mode:
            x = series.items[0].xData  # the data as given, before the log-axis transform
            return [] if x is None else [float(v) for v in x]
    return []


def test_sweep_fills_plots_table_and_history(window, qtbot, tiny_config_files) -> None:
    set_model(window, str(tiny_config_files["llama"]), "16,32,64")
    seen: list[str] = []
    r = window.runner
    r.modelLoaded.connect(lambda _: seen.append("loaded"))
    r.sweepStarted.connect(lambda _: seen.append("started"))
    r.pointReady.connect(lambda _: seen.append("point"))
    with qtbot.waitSignal(r.sweepFinished, timeout=TIMEOUT) as finished:
        window.sweep_panel.run_button.click()
        assert not window.sweep_panel.run_button.isEnabled()  # no second Run while running
        assert window.runner.run(window.model_panel.spec(), window.sweep_panel.config()) is False
    run = finished.args[0]
    window.flush_views()  # the last updates are still a tick each behind the signal
    assert run.status == "complete" and len(run.points) == 6
    assert seen == ["loaded", "started"] + ["point"] * 6
    assert plotted(window.latency, "prefill") == [16, 32, 64] == plotted(window.latency, "decode")
    assert curve_x(window.throughput, "decode") == [16.0, 32.0, 64.0]
    memory_series = next(s for (_, m), s in window.memory.series.items() if m == "prefill")
    kv_top = memory_series.items[1].yData
    assert len(kv_top) == 3 and kv_top[0] < kv_top[-1]  # the KV layer grows with L
    assert window.table.rowCount() == 6
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    assert window.sweep_panel.run_button.isEnabled()
    with RunStore(database_path()) as store:
        [summary] = store.list_runs()
    assert summary.id == run.id and summary.points_ok == 6
    settle(window, qtbot)  # the history is read off the UI thread
    assert window.history.table.rowCount() == 1
    assert "complete" in window.status_label.text()
    # A config-only source: random weights said once in the panel (a line) and once for
    # the runs shown (the window's bar), not as two identical yellow bars.
    assert "random weights (architecture only)" in window.model_panel.info.text()
    assert window.run_banner.isVisible()


def test_cancel_keeps_partial_run_and_ui_recovers(window, qtbot, tiny_config_files) -> None:
    set_model(window, str(tiny_config_files["llama"]), "16:512:+16")
    window.sweep_panel.repeats.setValue(20)
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        window.sweep_panel.run_button.click()
        qtbot.waitSignal(window.runner.pointReady, timeout=TIMEOUT).wait()
        window.sweep_panel.cancel_button.click()
    run = finished.args[0]
    assert run.status == "cancelled" and 1 <= len(run.points) < 64
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    assert window.sweep_panel.run_button.isEnabled() and not window.sweep_panel.cancel_button.isEnabled()
    with RunStore(database_path()) as store:
        assert store.get_run(run.id).status == "cancelled"
    # Usable again: a second sweep runs to completion.
    window.sweep_panel.lengths.setText("16")
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as again:
        window.sweep_panel.run_button.click()
    assert again.args[0].status == "complete"


def test_oom_point_is_shown_as_oom(window, qtbot, tiny_config_files, monkeypatch) -> None:
    from ctxscope.core.measure.measurer import Measurer

    original = Measurer.measure

    def measure(self, mode, length):
        if mode == "prefill" and length >= 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return original(self, mode, length)

    monkeypatch.setattr(Measurer, "measure", measure)
    set_model(window, str(tiny_config_files["llama"]), "16,32,64")
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=TIMEOUT) as finished:
        window.sweep_panel.run_button.click()
    window.flush_views()  # the last updates are still a tick each behind the signal
    statuses = [(p.mode, p.length, p.status) for p in finished.args[0].points]
    assert ("prefill", 32, "oom") in statuses and ("prefill", 64, "skipped") in statuses
    table_statuses = [window.table.item(r, 3).text() for r in range(window.table.rowCount())]
    assert "oom" in table_statuses and "skipped" in table_statuses
    xs, _ = window.memory.oom.getData()
    assert len(xs) == 1  # one ✕ on the memory plot


def test_bad_model_shows_an_error_in_the_window(window, qtbot) -> None:
    set_model(window, "/no/such/model/dir", "16")
    with qtbot.waitSignal(window.runner.jobFailed, timeout=TIMEOUT) as failed:
        window.sweep_panel.run_button.click()
    assert "no such file" in failed.args[0]
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    assert window.error_box.isVisible() and "no such file" in window.error_banner.text()
    assert window.sweep_panel.run_button.isEnabled()


def test_bad_lengths_are_shown_next_to_the_field(window, qtbot) -> None:
    window.sweep_panel.lengths.setText("128:64")
    assert "below start" in window.sweep_panel.lengths_error.text()
    with qtbot.assertNotEmitted(window.runner.busyChanged):
        window.sweep_panel.run_button.click()


def _stored_run(tiny_config_files) -> str:
    from ctxscope.core.model.loading import load_model
    from ctxscope.core.spec import ModelSpec
    from ctxscope.core.jobs.sweep import run_sweep
    from tests.conftest import drain, fast_config

    loaded = load_model(ModelSpec(str(tiny_config_files["gpt2"]), device="cpu"))
    _, run = drain(run_sweep(loaded, fast_config((16, 32))))
    with RunStore(database_path()) as store:
        store.save_run(run)
    return run


def test_open_stored_run_fills_the_plots(window, qtbot, tiny_config_files, tmp_path: Path) -> None:
    run = _stored_run(tiny_config_files)
    window.refresh_history()
    settle(window, qtbot)
    window.history.select(run.id)
    window.history.open_button.click()
    settle(window, qtbot)
    assert plotted(window.latency, "prefill") == [16, 32] and window.table.rowCount() == 4
    assert window.run_banner.isVisible()  # random weights
    # The same run as a file, e.g. made by `ctxscope sweep` on a GPU server.
    from ctxscope.core.serialize import write_run

    path = tmp_path / "server.json"
    write_run(run, path)
    window._clear_views()
    window.open_run_file(str(path))
    assert plotted(window.latency, "decode") == [16, 32]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "something/else"}))
    window.open_run_file(str(bad))
    assert window.error_box.isVisible() and "unknown schema" in window.error_banner.text()


def test_delete_asks_first(window, qtbot, tiny_config_files, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    run = _stored_run(tiny_config_files)
    window.refresh_history()
    settle(window, qtbot)
    window.history.select(run.id)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    window.history.delete_button.click()
    settle(window, qtbot)
    assert window.history.table.rowCount() == 1
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.history.delete_button.click()
    settle(window, qtbot)
    with RunStore(database_path()) as store:
        assert store.list_runs() == []
    assert window.history.empty.isVisible() or not window.history.table.rowCount()


def test_settings_persist_but_never_trust_remote_code(qtbot, qapp) -> None:
    from ctxscope.gui.main_window import MainWindow

    first = MainWindow()
    qtbot.addWidget(first)
    first.model_panel.source.setEditText("preset:qwen2.5-0.5b")
    first.model_panel.trust_remote_code.setChecked(True)
    first.sweep_panel.lengths.setText("1k:8k:x2")
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    assert second.model_panel.source.currentText() == "preset:qwen2.5-0.5b"
    assert second.sweep_panel.lengths.text() == "1k:8k:x2"
    assert not second.model_panel.trust_remote_code.isChecked()
    second.close()


def test_first_run_defaults_to_a_small_preset(window) -> None:
    assert window.model_panel.source.currentText() == "preset:gpt2"
    assert window.history.empty.isVisibleTo(window.history) and "No runs yet" in window.history.empty.text()
    assert window.attention.empty.isVisibleTo(window.attention)


def test_shortcuts_exist(window) -> None:
    shortcuts = {a.shortcut().toString() for a in window.findChildren(type(window.run_action))}
    assert {"Ctrl+R", "Esc", "Ctrl+O", "Ctrl+Q"} <= shortcuts


def test_about_lists_versions() -> None:
    from ctxscope.gui.about import about_text

    text = about_text()
    assert "ctxscope" in text and "PySide6" in text and "transformers" in text


def test_many_none_returning_qt_calls_do_not_crash(qtbot) -> None:
    """PySide6 6.12.0 on Python 3.11 drops a reference to None on every None-returning
    call and aborts within seconds; this exercises tens of thousands of them."""
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    qtbot.addWidget(label)
    for i in range(20_000):
        label.setText(str(i))
        label.setVisible(i % 2 == 0)
        label.setToolTip("x")
    assert label.text() == "19999"


def test_overlay_shows_several_runs(window, qtbot, tiny_config_files) -> None:
    first = _stored_run(tiny_config_files)
    second = _stored_run(tiny_config_files)
    window.refresh_history()
    window.open_stored_run(first.id)
    settle(window, qtbot)
    window.open_stored_run(second.id, overlay=True)
    settle(window, qtbot)
    runs = {run for run, _ in window.latency.series}
    assert runs == {first.id, second.id}
    assert window.table.rowCount() == 8
    # The second run's curves are drawn in another line style, and named in the legend.
    styles = {run: window.latency.series[(run, "prefill")].items[0].opts["pen"].style() for run in runs}
    assert styles[first.id] != styles[second.id]
    assert len(window.latency.legend.items) == 4
    names = [label.text for _, label in window.latency.legend.items]
    assert all("—" in name for name in names)  # both runs are named once they are compared
    layers = [label.text for _, label in window.memory.legend.items if label.text != "predicted weights + KV"]
    assert layers[:3] == ["weights", "KV cache", "activations"]


def test_attention_choices_are_what_the_core_says_can_run(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctxscope.core.model import kernels
    from ctxscope.gui.model_panel import ModelPanel

    for present, flash in ((set(), False), ({"flash_attn"}, True)):
        monkeypatch.setattr(kernels, "_installed", lambda module, present=present: module in present)
        panel = ModelPanel()
        qtbot.addWidget(panel)
        items = [panel.attn.itemText(i) for i in range(panel.attn.count())]
        assert items[0] == "default" and panel.attn.itemData(0) is None
        assert ("flash_attention_2" in items) is flash and {"sdpa", "eager"} <= set(items)
