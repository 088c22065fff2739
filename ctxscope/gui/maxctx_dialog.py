"""Run → Find max context…: mode, memory budget and granularity for the search."""

from __future__ import annotations

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QSpinBox,
                               QWidget)

from ctxscope.core.errors import BadInputError


class MaxContextDialog(QDialog):
    def __init__(self, *, on_gpu: bool, default_budget: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Find max context")
        form = QFormLayout(self)
        form.addRow(QLabel("Finds the longest context of the model in the panel that runs within the budget:\n"
                           "two calibration passes, then bracket and bisect with real passes (each\n"
                           "out-of-memory handled). Probes appear on the memory plot as they finish.\n"
                           "On CPU the budget applies to the whole process (RSS), the app included."))
        self.mode = QComboBox()
        self.mode.addItems(["prefill", "decode", "forward"])
        self.budget = QLineEdit(default_budget)
        self.budget.setPlaceholderText("free GPU memory" if on_gpu else "required on CPU, e.g. 4GiB")
        self.granularity = QSpinBox()
        self.granularity.setRange(1, 1 << 20)
        self.granularity.setValue(256)
        self.granularity.setSuffix(" tokens")
        self.error = QLabel()
        self.error.setStyleSheet("color: #c0392b;")
        form.addRow("Mode", self.mode)
        form.addRow("Memory budget", self.budget)
        form.addRow("Granularity", self.granularity)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._on_accepted)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.on_gpu = on_gpu

    def budget_bytes(self) -> int | None:
        from ctxscope.core.units import parse_size

        text = self.budget.text().strip()
        if not text:
            if not self.on_gpu:
                raise BadInputError("on CPU give a memory budget, e.g. 4GiB (it is enforced on the measured peak)")
            return None
        return parse_size(text, "memory size")

    def _on_accepted(self) -> None:
        try:
            self.budget_bytes()
        except BadInputError as exc:
            self.error.setText(str(exc))
            return
        self.accept()
