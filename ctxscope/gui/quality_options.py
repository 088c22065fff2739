"""The Sweep panel's quality options: a checkbox, the text, and which passes."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QVBoxLayout, QWidget

from ctxscope.core.quality.config import TEXTS, QualityConfig
from ctxscope.core.quality.records import TASKS

TASK_TIPS = {"single": "one key, one question (teacher-forced: greedy match and log p(key))",
             "multikey": "four needles of one form, one asked for: the other three are distractors",
             "multivalue": "four values for one key: all asked for", "multiquery": "four keys asked for at once",
             "vt": "variable tracking: follow a chain of assignments to every variable holding a value"}


class QualityOptions(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.enabled = QCheckBox("Measure what context buys (loss and needle retrieval; untimed)")
        self.enabled.setToolTip("After each length's timed points: the loss of fixed target windows of a long real "
                                "text when the model reads that much context before them, and whether it retrieves a "
                                "key planted at several depths. Needs a real (not random-weights) decoder.")
        self.text = QComboBox()
        self.text.setEditable(True)
        self.text.addItems(list(TEXTS))
        self.text.setToolTip("A shipped novel or a path to your own UTF-8 text (never tiled: it must be long enough)")
        self.kinds = {name: QCheckBox(name) for name in ("loss", "needle")}
        for box in self.kinds.values():
            box.setChecked(True)
        self.tasks = {name: QCheckBox(name) for name in TASKS}  # retrieval tasks (RULER-style beyond single)
        for name, box in self.tasks.items():
            box.setChecked(name == "single")
            box.setToolTip(TASK_TIPS[name])
        self.details = QWidget()
        form = QFormLayout(self.details)
        form.setContentsMargins(16, 0, 0, 0)
        form.addRow("Text", self.text)
        kinds = QHBoxLayout()
        for box in self.kinds.values():
            kinds.addWidget(box)
        kinds.addStretch(1)
        form.addRow("Passes", kinds)
        tasks = QHBoxLayout()
        for box in self.tasks.values():
            tasks.addWidget(box)
        tasks.addStretch(1)
        form.addRow("Needle tasks", tasks)
        self.details.setVisible(False)
        self.enabled.toggled.connect(self.details.setVisible)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.enabled)
        layout.addWidget(self.details)

    def config(self) -> QualityConfig | None:
        """The quality request, or ``None``. A model it does not apply to gets a note, not
        an error: the app offers quality before it knows the model."""
        if not self.enabled.isChecked():
            return None
        kinds = tuple(name for name, box in self.kinds.items() if box.isChecked()) or ("loss",)
        tasks = tuple(name for name, box in self.tasks.items() if box.isChecked()) or ("single",)
        return QualityConfig(kinds=kinds, text=self.text.currentText().strip() or "pride-and-prejudice",
                             tasks=tasks, only_if_applicable=True)

    def set_config(self, quality: Any) -> None:
        self.enabled.setChecked(quality is not None)
        if quality is not None:
            self.text.setCurrentText(quality.text)
            for name, box in self.kinds.items():
                box.setChecked(name in quality.kinds)
            for name, box in self.tasks.items():
                box.setChecked(name in getattr(quality, "tasks", ("single",)))
