"""The app opens whatever state the history is in, and says what is wrong: a damaged
file (moved aside, what reads recovered) or a data directory that cannot be created."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxscope.core.jobs.sweep import run_sweep
from tests.conftest import drain, fast_config
from tests.store.test_history_faults import build_history, copies, damage, mounts  # noqa: F401 (a fixture)


def open_window(qtbot, qapp):
    from ctxscope.gui.app import configure_pyqtgraph
    from ctxscope.gui.main_window import MainWindow

    configure_pyqtgraph(qapp)
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: not win.history_controller.busy, timeout=30_000)  # the history is read off the UI thread
    return win


def test_the_app_opens_on_a_damaged_history(qtbot, qapp, loaded_llama, ctxscope_home: Path) -> None:
    run = drain(run_sweep(loaded_llama, fast_config((16, 32))))[1]
    db = ctxscope_home / "runs.sqlite3"
    build_history(db, copies(run, 40))
    damaged = damage(db, "pages")
    win = open_window(qtbot, qapp)
    try:
        [aside] = ctxscope_home.glob("runs-damaged-*.sqlite3")
        assert aside.read_bytes() == damaged
        assert not win.error_box.isHidden() and f"moved it to {aside}" in win.error_banner.text()
        assert "recovered" in win.history.problem.text().lower() and not win.history.problem.isHidden()
        assert win.history.table.rowCount() >= 30
    finally:
        win.close()


def test_the_app_opens_when_the_data_directory_cannot_be_created(qtbot, qapp, monkeypatch, mounts,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    mounts.read_only(parent)
    monkeypatch.setenv("CTXSCOPE_HOME", str(parent / "home"))
    win = open_window(qtbot, qapp)
    try:
        assert "cannot be created" in win.error_banner.text() and not win.error_box.isHidden()
        assert win.history.table.rowCount() == 0
    finally:
        win.close()
    if (parent / "home").exists():
        pytest.fail("the app created the data directory on a read-only mount?")
