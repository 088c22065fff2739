"""GUI fixtures: offscreen Qt, a main window per test, and a check for leaked windows."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def no_leaked_windows(qapp):
    """Fail a test that leaves a visible top-level window behind (ndv's habit)."""
    yield
    qapp.processEvents()
    leaked = [w for w in qapp.topLevelWidgets() if w.isVisible()]
    for widget in leaked:
        widget.close()
    assert not leaked, f"leaked windows: {[type(w).__name__ for w in leaked]}"


@pytest.fixture
def window(qtbot, qapp):
    from ctxscope.gui.app import configure_pyqtgraph
    from ctxscope.gui.main_window import MainWindow

    configure_pyqtgraph(qapp)
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()  # saves settings, waits for the worker thread


def set_model(window, source: str, lengths: str) -> None:
    window.model_panel.source.setEditText(source)
    window.model_panel.device.setCurrentIndex(window.model_panel.device.findData("cpu"))
    window.sweep_panel.lengths.setText(lengths)
    window.sweep_panel.policy.setCurrentIndex(1)  # fixed repeats: fast and deterministic
    window.sweep_panel.repeats.setValue(2)


def settle(window, qtbot, timeout: int = 30_000) -> None:
    """Wait for the history's reads and deletes (they run off the UI thread)."""
    qtbot.waitUntil(lambda: not window.history_controller.busy, timeout=timeout)
