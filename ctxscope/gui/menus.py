"""The window's menus and toolbar: every action once, with its shortcut and icon."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QMainWindow

from ctxscope._resources import resource_path


@dataclass(frozen=True)
class Actions:
    open: QAction
    export: QAction
    run: QAction
    matrix: QAction
    maxctx: QAction
    cancel: QAction


def build_menus(window: QMainWindow, *, open_file: Callable[[], Any], export: Callable[[], Any],
                run: Callable[[], Any], matrix: Callable[[], Any], maxctx: Callable[[], Any],
                cancel: Callable[[], Any], plots: dict[str, Any], copy_plot: Callable[[Any], Any],
                save_plot: Callable[[Any], Any], about: Callable[[], Any]) -> Actions:
    def action(menu: Any, text: str, shortcut: str | None, slot: Callable[[], Any]) -> QAction:
        act = QAction(text, window)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda _checked=False: slot())
        menu.addAction(act)
        return act

    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    open_action = action(file_menu, "&Open run file…", "Ctrl+O", open_file)
    export_action = action(file_menu, "&Export report…", "Ctrl+E", export)
    file_menu.addSeparator()
    action(file_menu, "&Quit", "Ctrl+Q", window.close)
    run_menu = bar.addMenu("&Run")
    actions = Actions(open=open_action, export=export_action,
                      run=action(run_menu, "&Run sweep", "Ctrl+R", run),
                      matrix=action(run_menu, "Compare &kernels and dtypes…", "Ctrl+Shift+R", matrix),
                      maxctx=action(run_menu, "&Find max context…", "Ctrl+M", maxctx),
                      cancel=action(run_menu, "&Cancel", "Esc", cancel))
    edit_menu = bar.addMenu("&Edit")
    for name, plot in plots.items():
        action(edit_menu, f"Copy {name} plot", None, partial(copy_plot, plot))
        action(edit_menu, f"Save {name} plot as PNG/SVG…", None, partial(save_plot, plot))
        menu = plot.getPlotItem().vb.menu  # the plot's own right-click menu too
        menu.addSeparator()
        menu.addAction("Copy plot (PNG + SVG)").triggered.connect(partial(copy_plot, plot))
        menu.addAction("Save plot as PNG/SVG…").triggered.connect(partial(save_plot, plot))
    help_menu = bar.addMenu("&Help")
    action(help_menu, "&About ctxscope", None, about)
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("main-toolbar")  # saveState/restoreState need a name
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for act, icon, text in ((actions.run, "run", "Run"), (actions.cancel, "stop", "Cancel"),
                            (actions.matrix, "compare", "Compare kernels/dtypes"), (actions.open, "open", "Open run"),
                            (actions.export, "export", "Export report")):
        act.setIcon(QIcon(str(resource_path("icons", "toolbar", f"{icon}.svg"))))
        act.setIconText(text)
        act.setToolTip(f"{act.text().replace('&', '').rstrip('…')} ({act.shortcut().toString()})")
        toolbar.addAction(act)
    actions.cancel.setEnabled(False)
    return actions
