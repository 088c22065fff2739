"""What the window remembers between sessions (beside the run history, so
``CTXSCOPE_HOME`` isolates both). Remote code is never remembered as trusted."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow

from ctxscope.core.paths import data_dir
from ctxscope.core.spec import ModelSpec
from ctxscope.gui.model_panel import ModelPanel
from ctxscope.gui.sweep_panel import SweepPanel

DEFAULT_SOURCE = "preset:gpt2"  # first run: small, no download, fits the default lengths


def settings() -> QSettings:
    return QSettings(str(data_dir() / "gui.ini"), QSettings.Format.IniFormat)


def restore(window: QMainWindow, model_panel: ModelPanel, sweep_panel: SweepPanel) -> None:
    s = settings()
    geometry = s.value("window/geometry")
    if isinstance(geometry, QByteArray):
        window.restoreGeometry(geometry)
    else:
        window.resize(1440, 900)
    state = s.value("window/state")
    if isinstance(state, QByteArray):
        window.restoreState(state)
    source = s.value("model/source") or DEFAULT_SOURCE
    # trust_remote_code is deliberately never restored.
    model_panel.set_spec(ModelSpec(source=str(source), dtype=str(s.value("model/dtype", "auto")),
                                   device=str(s.value("model/device", "auto")),
                                   attn_implementation=s.value("model/attn") or None,
                                   random_weights=s.value("model/random_weights", "false") == "true"))
    lengths = s.value("sweep/lengths")
    if lengths:
        sweep_panel.lengths.setText(str(lengths))
    cache = s.value("sweep/cache")
    if cache and sweep_panel.cache.combo.findData(str(cache)) >= 0:  # a hand-edited name is not offered
        sweep_panel.cache.set_choice(str(cache), _count(s.value("sweep/kv_group_size")),
                                     _count(s.value("sweep/kv_residual")))


def _count(value: object) -> int | None:
    """A whole number QSettings gives back as text (an ini file holds strings), or ``None``."""
    try:
        return int(str(value))
    except ValueError:
        return None


def save(window: QMainWindow, model_panel: ModelPanel, sweep_panel: SweepPanel) -> None:
    s = settings()
    s.setValue("window/geometry", window.saveGeometry())
    s.setValue("window/state", window.saveState())
    spec = replace(model_panel.spec(), trust_remote_code=False)
    s.setValue("model/source", spec.source)
    s.setValue("model/dtype", spec.dtype)
    s.setValue("model/device", spec.device)
    s.setValue("model/attn", spec.attn_implementation or "")
    s.setValue("model/random_weights", "true" if spec.random_weights else "false")
    s.setValue("sweep/lengths", sweep_panel.lengths.text())
    s.setValue("sweep/cache", sweep_panel.cache.strategy())
    s.setValue("sweep/kv_group_size", sweep_panel.cache.group_size.value())
    s.setValue("sweep/kv_residual", sweep_panel.cache.residual.value())
    s.sync()
