"""The Attention tab: filled live by a sweep with attention, paged by length/layer/head,
read on hover, exported as PNG, and reopened from the history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF

from tests.gui.conftest import set_model


def test_attention_sweep_fills_the_tab(window, qtbot, tiny_config_files, tmp_path: Path) -> None:
    set_model(window, str(tiny_config_files["llama"]), "32,64")
    window.sweep_panel.attention.setChecked(True)
    window.sweep_panel.attention_tiles.setValue(16)
    with qtbot.waitSignal(window.runner.sweepFinished, timeout=60_000) as finished:
        window.sweep_panel.run_button.click()
    run = finished.args[0]
    assert {e["length"] for e in run.attention} == {32, 64}
    view = window.attention
    window.tabs.setCurrentWidget(view)
    qtbot.wait(50)
    assert view.length.count() == 2 and view.empty.isHidden()
    view.length.setCurrentIndex(1)  # 64 tokens
    view.layer.setValue(1)
    view.head.setCurrentIndex(2)  # head 1
    expected = np.log10(np.maximum(view.data.layers[(64, 1)].maps[1], 1e-6))
    np.testing.assert_allclose(view.image.image, expected)
    assert view.image.image.shape == (16, 16) and len(view.grid_images) == 4
    view.scale.setCurrentText("linear")
    np.testing.assert_allclose(view.image.image, view.data.layers[(64, 1)].maps[1])
    # Hover: the read-out names the tiles under the cursor.
    view.map_plot.vb.autoRange()
    qtbot.wait(50)
    view._on_scene_mouse_moved(view.map_plot.vb.mapViewToScene(QPointF(5.5, 60.5)))
    assert view.readout.text().startswith("queries 60–63 → keys 4–7")
    png = view.export_png(str(tmp_path / "view.png"))
    assert Path(png).stat().st_size > 1000
    # Reopened from the history, the maps come back from the run's .npz.
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=60_000)
    window._clear_views()
    assert view.length.count() == 0
    window.open_stored_run(run.id)
    qtbot.waitUntil(lambda: not window.history_controller.busy, timeout=30_000)  # read off the UI thread
    assert view.length.count() == 2
    np.testing.assert_allclose(view.data.layers[(64, 1)].maps, run_maps(run.id, 64, 1))


def run_maps(run_id: str, length: int, layer: int) -> np.ndarray:
    from ctxscope.store.attention_files import store_path
    from ctxscope.core.attention.storage import load

    return load(store_path(run_id))[f"L{length}_layer{layer}"]
