"""What the tabs show, read as a user reads them (issue 27, items 12-14): the Live tab's
table, legends and axes, the Attention tab's selector, needle and head labels, the tab bar
holding still, the History's columns, the Quality tab's layout and trade-off axes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QPoint

from ctxscope.core.serialize import write_run
from tests.report.test_reports import make_run

CPU = dict(gpu=None)


def _cpu_run(run_id: str, **kw):
    run = make_run(run_id, **CPU, **kw)
    return replace(run, header=replace(run.header, settings=replace(run.header.settings, device="cpu")))


def _open(window, qtbot, tmp_path: Path, run, *, overlay: bool = False) -> None:
    path = tmp_path / f"{run.id}.json"
    write_run(run, path)
    window.open_run_file(str(path), overlay=overlay)
    qtbot.wait(20)


# -- Live tab (item 13) -------------------------------------------------------------------
def test_one_run_table_has_no_run_column_and_shows_the_median(window, qtbot, tmp_path: Path) -> None:
    table = window.table
    _open(window, qtbot, tmp_path, _cpu_run("a1"))
    assert table.isColumnHidden(0)  # the same label on every row took half the width
    median = 4  # "median ms"
    assert table.columnViewportPosition(median) + table.columnWidth(median) <= table.viewport().width()
    _open(window, qtbot, tmp_path, _cpu_run("b2", attn="eager"), overlay=True)
    assert not table.isColumnHidden(0) and table.columnWidth(0) <= 180
    assert table.item(0, 0).toolTip() == table.item(0, 0).text()


def test_memory_legend_never_turns_into_hidden_icons(window, qtbot, tmp_path: Path) -> None:
    memory = window.memory
    _open(window, qtbot, tmp_path, _cpu_run("a1"))
    for mode in ("decode", "prefill", "decode"):
        window.live.memory_mode.setCurrentText(mode)
        samples = [sample for sample, _ in memory.legend.items]
        assert len(samples) >= 3 and all(s.item.isVisible() for s in samples), mode
    _open(window, qtbot, tmp_path, _cpu_run("c3"))  # opening another run: the same
    assert all(sample.item.isVisible() for sample, _ in memory.legend.items)
    assert [label.text for _, label in memory.legend.items][-3:] == ["weights", "KV cache", "activations"]


def test_memory_axis_starts_at_zero(window, qtbot, tmp_path: Path) -> None:
    _open(window, qtbot, tmp_path, _cpu_run("a1"))
    for mode in ("prefill", "decode"):
        window.live.memory_mode.setCurrentText(mode)
        vb = window.memory.getPlotItem().vb
        vb.updateAutoRange()
        low, high = vb.viewRange()[1]
        assert low <= 0.0 < 0.2 < high, (mode, low, high)  # weights alone are 0.23 GiB: not cut off at them


def test_log_axes_read_plain_numbers_and_label_narrow_ranges() -> None:
    from ctxscope.gui.axes import LogValueAxis

    axis = LogValueAxis("left")
    axis.setLogMode(False, True)
    [(_, values)] = axis.tickValues(np.log10(4), np.log10(25), size=250)
    labels = axis.tickStrings(values, 1.0, 1.0)
    assert len(labels) >= 5 and {"5", "10", "20"} <= set(labels), labels  # not 5, 10, 20 alone
    [(_, wide)] = axis.tickValues(np.log10(500), np.log10(40000), size=250)
    text = axis.tickStrings(wide, 1.0, 1.0)
    assert "10k" in text and not any("e+" in t for t in text), text  # Compare printed "1e+04"
    gaps = np.diff(values) * 250 / (np.log10(25) - np.log10(4))
    assert gaps.min() >= 20  # never crowded


def test_the_lengths_check_counts_in_words(window) -> None:
    panel = window.sweep_panel
    panel.lengths.setText("1k")
    assert panel.lengths_error.text() == "1 length: 1k"  # not "1 lengths: 1k … 1k"
    panel.lengths.setText("128,256")
    assert panel.lengths_error.text() == "2 lengths: 128 … 256"


def test_empty_plots_show_typical_lengths_not_2_4_8(window) -> None:
    for plot in (window.latency, window.memory, window.throughput):
        (x0, x1), _ = plot.getPlotItem().vb.viewRange()
        assert round(10**x0) == 128 and round(10**x1) == 4096
        axis = plot.getAxis("bottom")
        ticks = [v for _, vs in axis.tickValues(x0, x1, 400) for v in vs]
        shown = axis.tickStrings(ticks, 1.0, 1.0)
        assert "2" not in shown and "8" not in shown and "128" in shown and "4k" in shown


# -- Attention tab (item 14) --------------------------------------------------------------
def _capture(heads: int = 9, length: int = 64, span=(20, 24)):
    tiles = 8
    maps = np.tril(np.ones((heads, tiles, tiles), dtype=np.float32)) / np.arange(1, tiles + 1)[None, :, None]
    layer = SimpleNamespace(length=length, layer=0, maps=maps, tile_edges=np.linspace(0, length, tiles + 1).astype(int),
                            profiles={length - 1: np.full((heads, length), 1 / length)},
                            stats={"sink_mass": [0.1] * heads})
    return SimpleNamespace(capture=SimpleNamespace(layers=[layer], length=length, span=span), tokens=None)


def test_attention_selector_needle_and_head_labels(window, qtbot) -> None:
    view = window.attention
    window.tabs.setCurrentWidget(view)
    view.add_result(_capture())
    qtbot.wait(20)
    assert view.head.itemText(0) == "mean of heads"
    assert view.head.width() >= view.head.fontMetrics().horizontalAdvance("mean of heads")  # not "mean of"
    for label in (view.needle_keys, view.needle_queries):
        assert label.isVisible() and label.toPlainText() == "needle"
    assert view.span_keys.getRegion() == (20, 24)
    heads = [item.text for item in view.grid.ci.items if hasattr(item, "text")]
    assert heads == [f"head {h}" for h in range(9)]
    view.add_result(_capture(span=None, length=128))
    view.length.setCurrentIndex(1)
    assert not view.needle_keys.isVisible()  # no needle, no label


def test_the_tab_bar_holds_still_when_the_random_weights_banner_goes(window, qtbot) -> None:
    qtbot.waitExposed(window)
    bar = window.tabs.tabBar()

    def top() -> int:
        return bar.mapTo(window, QPoint(0, 0)).y()

    window.run_banner.setVisible(True)
    qtbot.wait(20)
    with_banner = top()
    window.run_banner.setVisible(False)
    qtbot.wait(20)
    assert top() == with_banner


def test_history_names_host_quality_and_attention(window, qtbot) -> None:
    from ctxscope.core.paths import database_path
    from ctxscope.store import RunStore
    from tests.gui.conftest import settle

    remote = make_run("20261201-080000-aaaaaa")
    remote = replace(remote, header=replace(
        remote.header, environment=replace(remote.header.environment, host="gpu-box"),
        settings=replace(remote.header.settings, attention={"tiles": 64, "layers": []},
                         quality={"kinds": ["loss", "needle"]})))
    local = make_run("20261201-090000-bbbbbb")
    with RunStore(database_path()) as store:
        store.save_run(remote)
        store.save_run(local)
    window.refresh_history()
    settle(window, qtbot)
    table = window.history.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    rows = {table.item(r, headers.index("id")).text(): {h: table.item(r, c).text() for c, h in enumerate(headers)}
            for r in range(table.rowCount())}
    assert rows[remote.id]["host"] == "gpu-box" and rows[local.id]["host"] == "this machine"
    assert rows[remote.id]["quality"] == "loss, needle" and rows[local.id]["quality"] == "-"
    assert rows[remote.id]["attention"] == "64 tiles" and rows[remote.id]["kernel"] == "sdpa"


# -- Quality tab (item 12) ----------------------------------------------------------------
@pytest.fixture
def quality_run():
    from tests.report.test_quality_report import _quality_run

    run = _quality_run()
    return replace(run, header=replace(run.header, model=replace(run.header.model, random_weights=False)))


def test_quality_tab_lays_out_and_keeps_the_tradeoff_honest(window, qtbot, tmp_path: Path, quality_run) -> None:
    from ctxscope.report.tradeoff import MIN_LOSS_SPAN

    window.resize(1400, 900)
    _open(window, qtbot, tmp_path, quality_run)
    view = window.quality
    window.tabs.setCurrentWidget(view)
    qtbot.wait(50)
    plot = view.loss_plot
    item = plot.getPlotItem()
    # The whole plot is on screen: the needle table beside it no longer covers its right part.
    assert item.sceneBoundingRect().width() <= plot.viewport().width() + 1
    assert plot.mapTo(view, QPoint(plot.width(), 0)).x() <= view.needle.mapTo(view, QPoint(0, 0)).x()
    tradeoff = view.tradeoff_plot
    low, high = tradeoff.getPlotItem().vb.viewRange()[1]
    assert high - low >= MIN_LOSS_SPAN  # the 0.15-nat fall is not blown up to fill the axis
    band_low, band_high = tradeoff.low.getData()[1], tradeoff.high.getData()[1]
    assert band_low is not None and len(band_low) == 5 and low <= band_low.min() and band_high.max() <= high
    assert tradeoff.cost_box.viewRange()[1][0] == 0.0  # the cost from zero
    assert window.sweep_panel.quality.enabled.isChecked()  # the opened run's sweep, quality passes included


def test_html_tradeoff_draws_the_band_on_a_sane_range(quality_run) -> None:
    from ctxscope.core.quality.effective import loss_rows
    from ctxscope.report.quality_charts import tradeoff_svg
    from ctxscope.report.tradeoff import loss_range, tradeoff

    rows = loss_rows(quality_run.quality.loss)
    svg = tradeoff_svg(tradeoff(quality_run), None, title="t", bands=rows)
    assert svg is not None and "loss 95 % interval" in svg
    low, high = loss_range(rows)
    assert high - low >= 0.5 and low <= min(r.low for r in rows) and high >= max(r.high for r in rows)
    assert "knee 1k" in svg


def test_an_opened_runs_quality_request_is_what_the_panel_repeats(window, qtbot) -> None:
    """The run's tasks, depths and trials come back into the Sweep panel (not the defaults)."""
    from ctxscope.gui.sweep_panel import config_of

    run = make_run("20261201-100000-cccccc")
    settings = replace(run.header.settings, quality={
        "kinds": ["needle"], "text": "the-great-gatsby", "tasks": ["single", "multikey", "vt"],
        "depths": [0.0, 50.0, 100.0], "seeds": 5, "windows": 4, "target_tokens": 256, "threshold": 0.9,
        "epsilon": 0.01, "text_encoding": None})
    cfg = config_of(settings).quality
    assert cfg.tasks == ("single", "multikey", "vt") and cfg.depths == (0.0, 50.0, 100.0) and cfg.seeds == 5
    assert cfg.kinds == ("needle",) and cfg.text_encoding is None
    window.sweep_panel.quality.set_config(cfg)
    boxes = window.sweep_panel.quality.tasks
    assert [name for name, box in boxes.items() if box.isChecked()] == ["single", "multikey", "vt"]
    assert window.sweep_panel.quality.config().tasks == ("single", "multikey", "vt")


def test_an_opened_runs_own_text_file_comes_back_by_its_path(tmp_path: Path) -> None:
    """A run scored on the user's file records its bare name as "text" and the path as
    "text_source": the panel repeats the path (the name alone is not found again); a
    shipped text stays its name."""
    from ctxscope.gui.sweep_panel import config_of

    run = make_run("20261201-100000-dddddd")
    path = tmp_path / "notes.txt"
    own = replace(run.header.settings, quality={"kinds": ["loss"], "text": "notes.txt", "text_source": str(path)})
    assert config_of(own).quality.text == str(path)
    shipped = replace(run.header.settings, quality={"kinds": ["loss"], "text": "the-great-gatsby",
                                                    "text_source": "https://www.gutenberg.org/ebooks/64317"})
    assert config_of(shipped).quality.text == "the-great-gatsby"
