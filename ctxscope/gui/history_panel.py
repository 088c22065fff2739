"""Stored runs (the same history as the CLI's): open one into the plots, delete one."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from ctxscope.store import RunSummary

# "kernel" is the attention implementation; "attention" the maps a run captured.
COLUMNS = ("created", "model", "host", "device", "dtype", "kernel", "status", "points", "attention", "quality", "id")


class HistoryPanel(QWidget):
    openRequested = Signal(str)  # run id
    overlayRequested = Signal(str)  # add to what the plots show
    deleteRequested = Signal(str)
    refreshRequested = Signal()
    compareRequested = Signal(object)  # list of run ids

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda _: self._emit_selected(self.openRequested))
        self.empty = QLabel("No runs yet. Choose a model, press Run (Ctrl+R); every run is kept here.\n"
                            "Runs made with `ctxscope sweep` appear here too; Ctrl+O opens a run file.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # What is wrong with the history (damaged and moved aside, cannot be written):
        # said here too, where the runs are missing, not only in the window's red bar.
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.setStyleSheet("background: #fff3cd; color: #664d03; padding: 4px; border-radius: 3px;")
        self.problem.setVisible(False)
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(lambda: self._emit_selected(self.openRequested))
        self.overlay_button = QPushButton("Overlay")
        self.overlay_button.setToolTip("Add this run to the plots, beside what they show (compare runs)")
        self.overlay_button.clicked.connect(lambda: self._emit_selected(self.overlayRequested))
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Compare the selected runs (Ctrl/Shift-click to select several)")
        self.compare_button.clicked.connect(lambda: self.compareRequested.emit(self.selected_ids()))
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(lambda: self._emit_selected(self.deleteRequested))
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refreshRequested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.overlay_button)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        buttons.addWidget(refresh)
        layout = QVBoxLayout(self)
        layout.addWidget(self.problem)
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

    def set_runs(self, runs: list[RunSummary]) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(runs))
        for row, r in enumerate(reversed(runs)):  # newest first
            values = (r.created.replace("T", " ")[:19], r.model_source, r.host or "this machine", r.device, r.dtype,
                      r.attn, r.status, r.points_text(), r.attention or "-", r.quality or "-", r.id)
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, r.id)
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self.empty.setVisible(not runs)
        self.table.setVisible(bool(runs))

    def set_problem(self, text: str | None) -> None:
        self.problem.setText(text or "")
        self.problem.setVisible(bool(text))

    def selected_id(self) -> str | None:
        items = self.table.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        return [self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in rows]

    def select(self, run_id: str) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == run_id:
                self.table.selectRow(row)
                return

    def _emit_selected(self, signal: Signal) -> None:
        run_id = self.selected_id()
        if run_id:
            signal.emit(run_id)
