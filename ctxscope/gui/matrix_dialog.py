"""Run → Compare kernels and dtypes…: pick attention kernels and dtypes; the runner then
measures every combination on one loaded copy per dtype and opens the comparison."""

from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QGroupBox, QLabel, QVBoxLayout, QWidget)

DTYPE_CHOICES = ("float32", "float16", "bfloat16")


class MatrixDialog(QDialog):
    def __init__(self, kernels: list[str], *, current_kernel: str | None, current_dtype: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare kernels and dtypes")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("The model in the panel is swept once per combination with the sweep settings;\n"
                                "it is loaded once per dtype. The comparison opens when all are done."))
        self.kernels = self._group(layout, "Attention kernels", kernels,
                                   {current_kernel or "sdpa", "eager"} & set(kernels) or set(kernels[:1]))
        self.dtypes = self._group(layout, "Dtypes", list(DTYPE_CHOICES),
                                  {current_dtype} if current_dtype in DTYPE_CHOICES else {DTYPE_CHOICES[0]})
        self.count = QLabel()
        layout.addWidget(self.count)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._update()

    def _group(self, layout: QVBoxLayout, title: str, names: list[str], ticked: set[str]) -> list[QCheckBox]:
        box = QGroupBox(title)
        inner = QVBoxLayout(box)
        boxes = []
        for name in names:
            check = QCheckBox(name)
            check.setChecked(name in ticked)
            check.toggled.connect(self._update)
            inner.addWidget(check)
            boxes.append(check)
        layout.addWidget(box)
        return boxes

    def choice(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(dtypes, kernels) ticked, in display order."""
        return (tuple(c.text() for c in self.dtypes if c.isChecked()),
                tuple(c.text() for c in self.kernels if c.isChecked()))

    def _update(self) -> None:
        dtypes, kernels = self.choice()
        n = len(dtypes) * len(kernels)
        self.count.setText(f"{n} run{'s' if n != 1 else ''}" if n else "Tick at least one kernel and one dtype.")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(n > 0)
