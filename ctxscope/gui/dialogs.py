"""Small questions the app asks."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget


def ask_run_anyway(parent: QWidget, check: Any) -> tuple[bool, bool]:
    """The memory guard predicts a point cannot fit: (run it?, same answer for the rest?)."""
    buttons = QMessageBox.StandardButton
    answer = QMessageBox.question(
        parent, "Point predicted not to fit",
        f"{check.mode} at L={check.length:,} is {check.reason().removesuffix('; --force runs it anyway')}.\n\n"
        "Run it anyway? It may swap or run out of memory (out-of-memory is recorded as data).",
        buttons.Yes | buttons.YesToAll | buttons.No | buttons.NoToAll, buttons.No)
    return answer in (buttons.Yes, buttons.YesToAll), answer in (buttons.YesToAll, buttons.NoToAll)
