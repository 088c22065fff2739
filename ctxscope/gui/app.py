"""Start the desktop app. PySide6 is imported before pyqtgraph so both use one binding;
torch and transformers load in the worker after the window is shown."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtGui import QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

import pyqtgraph as pg  # after PySide6, on purpose

from ctxscope._resources import resource_path
from ctxscope.core.spec import ModelSpec, SweepConfig


def configure_pyqtgraph(app: QApplication) -> None:
    """Plots follow the system light/dark palette."""
    palette = app.palette()
    pg.setConfigOptions(antialias=True, background=palette.color(QPalette.ColorRole.Base),
                        foreground=palette.color(QPalette.ColorRole.Text))


#: How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
#: While the worker runs Python (a model being built, the analytic model, a decode loop)
#: every return of the UI thread from Qt into Python waits up to this long; a paint makes
#: dozens of such returns.
GIL_SWITCH_S = 0.001


def create_app(argv: list[str] | None = None) -> QApplication:
    sys.setswitchinterval(GIL_SWITCH_S)
    app = QApplication.instance() or QApplication(argv or [sys.argv[0]])
    app.setApplicationName("ctxscope")
    app.setOrganizationName("ctxscope")
    app.setApplicationDisplayName("ctxscope")
    # Matches the installed desktop entry (ctxscope install-desktop): Wayland finds the icon by it.
    QGuiApplication.setDesktopFileName("io.github.ctxscope.ctxscope")
    if app.platformName() == "offscreen":
        # Qt 6.11's offscreen clipboard crashes at exit if it still holds mime data
        # (a copied plot): empty it first. Real platforms (xcb, wayland) are unaffected.
        app.aboutToQuit.connect(lambda: app.clipboard().clear())
    app.setWindowIcon(QIcon(str(resource_path("icons", "ctxscope.svg"))))
    configure_pyqtgraph(app)
    return app  # type: ignore[return-value]


def build_window(spec: ModelSpec | None = None, cfg: SweepConfig | None = None, autorun: bool = False,
                 runs: Sequence[str] = ()):
    """The main window, shown, with the worker's first job queued: the sweep when
    ``autorun``, else the device listing (which imports torch off the UI thread).
    ``runs``: run files to show (the first; the others overlaid), as File → Open does."""
    from PySide6.QtCore import QTimer

    from ctxscope.gui.main_window import MainWindow

    window = MainWindow()
    if spec is not None:
        window.model_panel.set_spec(spec)
    if cfg is not None:
        window.sweep_panel.set_config(cfg)
    window.show()
    for i, path in enumerate(runs):
        window.open_run_file(path, overlay=i > 0)
    runner = window.runner
    if autorun and spec is not None and cfg is not None:
        def list_devices_when_idle(busy: bool) -> None:
            if not busy:
                runner.busyChanged.disconnect(list_devices_when_idle)
                QTimer.singleShot(0, runner.list_devices)

        runner.busyChanged.connect(list_devices_when_idle)
        QTimer.singleShot(0, lambda: window.start_sweep(spec, cfg))
    else:
        QTimer.singleShot(0, runner.list_devices)
    return window


def run_app(spec: ModelSpec | None = None, cfg: SweepConfig | None = None, autorun: bool = False,
            runs: Sequence[str] = ()) -> int:
    app = create_app()
    window = build_window(spec, cfg, autorun, runs)
    code = app.exec()
    del window
    return int(code)
