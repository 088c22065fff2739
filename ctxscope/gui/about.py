"""The About text: versions and environment, read without importing torch."""

from __future__ import annotations

import html
import platform
from importlib import metadata

import ctxscope
from ctxscope.core.machine import nvml
from ctxscope.core.paths import database_path


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def about_text() -> str:
    import PySide6
    from PySide6.QtCore import qVersion

    rows = [("ctxscope", ctxscope.__version__), ("Python", platform.python_version()),
            ("Qt / PySide6", f"{qVersion()} / {PySide6.__version__}"), ("pyqtgraph", _version("pyqtgraph")),
            ("torch", _version("torch")), ("transformers", _version("transformers")),
            ("NVIDIA driver", nvml.driver_version() or "none found"), ("platform", platform.platform()),
            ("run history", str(database_path()))]
    body = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return ("<p><b>ctxscope</b> — what context length costs a transformer model on your hardware: latency, "
            "memory and attention, measured.</p><table>" + body + "</table>")
