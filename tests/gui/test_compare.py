"""The Compare tab, the kernel × dtype matrix, report export and plot export, driven
through the real window and worker."""

from __future__ import annotations

import pytest

import xml.dom.minidom
from pathlib import Path

from PySide6.QtCore import Qt

from ctxscope.core.serialize import load_run, write_run
from tests.report.test_reports import make_run
from tests.gui.conftest import set_model, settle

TIMEOUT = 120_000


def test_matrix_runs_every_kernel_and_opens_the_comparison(window, qtbot, tiny_config_files, tmp_path) -> None:
    set_model(window, str(tiny_config_files["llama"]), "16,32")
    with qtbot.waitSignal(window.runner.matrixFinished, timeout=TIMEOUT) as done:
        assert window.run_matrix(("float32",), ("sdpa", "eager"))
    run_ids = done.args[0]
    assert len(run_ids) == 2
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    settle(window, qtbot)  # the history lists the new runs, the comparison reads them (off the UI thread)
    settle(window, qtbot)
    view = window.compare
    assert window.tabs.currentWidget() is view
    assert sorted(view.checked_ids()) == sorted(run_ids)
    cmp = view.comparison
    assert {k.attn for k in cmp.keys} == {"sdpa", "eager"} and cmp.labels == ("sdpa", "eager")
    # Curves for both runs, a ratio curve for the non-baseline one, a filled table.
    assert len(view.latency.getPlotItem().listDataItems()) == 2
    assert len(view.ratio.getPlotItem().listDataItems()) == 1
    assert view.table.rowCount() == 2 and view.table.columnCount() == 2
    assert "×" in view.table.item(0, 1).text()
    # Baseline switch: the other run becomes the reference.
    view.baseline.setCurrentIndex(1)
    assert view.comparison.baseline == 1 and "×" in view.table.item(0, 0).text()
    # Export the comparison the user sees.
    out = window.export_report(str(tmp_path / "cmp.html"))
    qtbot.waitUntil(lambda: not window.exporting, timeout=TIMEOUT)  # written by a worker thread
    html = Path(out).read_text()
    assert "Comparison tables" in html and "baseline: eager" in html


def test_compare_runs_from_files_and_history(window, qtbot, tmp_path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_run(make_run("a1"), a)
    write_run(make_run("b2", attn="eager", scale=2.0, oom_from=4096), b)
    window.open_run_file(str(a), into_compare=True)
    window.open_run_file(str(b), into_compare=True)
    view = window.compare
    assert view.checked_ids() == ["a1", "b2"]
    assert "out of memory from 4096" in view.notes.text()
    rows = [view.table.item(r, 1).text() for r in range(view.table.rowCount())]
    assert rows[1].startswith("4.000 ms (2.00×)") and rows[2] == "oom"
    # Unticking leaves one run: still shown, no ratio curve.
    view.runs_list.item(1).setCheckState(Qt.CheckState.Unchecked)
    assert view.checked_ids() == ["a1"] and len(view.ratio.getPlotItem().listDataItems()) == 0
    view.runs_list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert view.empty.isVisibleTo(view) and not view.export_button.isEnabled()
    # Stored runs selected in the History tab and compared with its button.
    from ctxscope.core.paths import database_path
    from ctxscope.store import RunStore

    with RunStore(database_path()) as store:
        store.save_run(make_run("c3", dtype="bfloat16"))
        store.save_run(make_run("d4", dtype="float32", scale=3.0))
    window.refresh_history()
    settle(window, qtbot)
    table = window.history.table
    table.selectAll()
    window.history.compare_button.click()
    settle(window, qtbot)
    assert window.tabs.currentWidget() is view
    assert sorted(view.checked_ids()) == ["c3", "d4"]
    assert set(view.comparison.labels) == {"bfloat16", "float32"}


def test_export_live_run_in_every_format(window, qtbot, tmp_path) -> None:
    path = tmp_path / "r.json"
    write_run(make_run("a1"), path)
    window.open_run_file(str(path))
    for suffix, marker in ((".html", "At a glance"), (".md", "### ctxscope"), (".csv", "run_id,"),
                           (".json", '"schema": "ctxscope.run/1"')):
        out = window.export_report(str(tmp_path / f"out{suffix}"), comparison=False)
        qtbot.waitUntil(lambda: not window.exporting, timeout=TIMEOUT)
        assert out is not None and marker in Path(out).read_text(), suffix
        assert window.status_label.text().startswith("Wrote")
    assert load_run(tmp_path / "out.json").id == "a1"


def test_export_with_nothing_shown_says_what_to_do(window) -> None:
    assert window.export_report("/tmp/never.html", comparison=False) is None
    assert "run a sweep or open a run first" in window.error_banner.text()


def test_export_failure_is_shown_and_the_ui_stays_usable(window, qtbot, tmp_path) -> None:
    path = tmp_path / "r.json"
    write_run(make_run("a1"), path)
    window.open_run_file(str(path))
    window.export_report(str(tmp_path / "no-such-dir" / "r.html"), comparison=False)
    qtbot.waitUntil(lambda: not window.exporting, timeout=TIMEOUT)
    assert window.error_box.isVisible() and "Export failed" in window.error_banner.text()


def test_plot_export_png_svg_and_clipboard(window, qtbot, tmp_path, qapp) -> None:
    from pyqtgraph.exporters import Exporter, SVGExporter

    from ctxscope.gui.export import QtSvgExporter

    path = tmp_path / "r.json"
    write_run(make_run("a1"), path)
    window.open_run_file(str(path))
    window.flush_views()
    svg_path = Path(window.save_plot(window.latency, str(tmp_path / "latency.svg")))
    svg = svg_path.read_text()
    doc = xml.dom.minidom.parseString(svg)  # well-formed
    assert doc.documentElement.tagName == "svg" and svg.count("<path") > 10
    png = Path(window.save_plot(window.memory, str(tmp_path / "memory.png")))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    window.copy_plot(window.throughput)
    mime = qapp.clipboard().mimeData()
    assert "image/svg+xml" in mime.formats() and mime.hasImage()
    qapp.clipboard().clear()  # offscreen Qt crashes at exit with mime data on the clipboard (see app.py)
    # pyqtgraph's right-click Export… dialog offers a working exporter: ours where the
    # library's fails here (pyqtgraph #3495: 0.14.0 with Qt 6.11), the library's elsewhere.
    from ctxscope.gui.export import install_svg_workaround, native_svg_broken

    if native_svg_broken():
        assert QtSvgExporter in Exporter.Exporters and SVGExporter not in Exporter.Exporters
    else:
        assert SVGExporter in Exporter.Exporters and QtSvgExporter not in Exporter.Exporters
    saved = list(Exporter.Exporters)
    try:
        Exporter.Exporters[:] = [e for e in saved if e is not QtSvgExporter] + [SVGExporter] * (SVGExporter not in saved)
        assert install_svg_workaround(broken=False) is False  # a fixed pyqtgraph keeps its own
        assert SVGExporter in Exporter.Exporters and QtSvgExporter not in Exporter.Exporters
        assert install_svg_workaround(broken=True) is True
        assert QtSvgExporter in Exporter.Exporters and SVGExporter not in Exporter.Exporters
    finally:
        Exporter.Exporters[:] = saved
    menu_texts = [a.text() for a in window.latency.getPlotItem().vb.menu.actions()]
    assert "Copy plot (PNG + SVG)" in menu_texts and "Save plot as PNG/SVG…" in menu_texts


def test_find_max_context_draws_probes_and_answers(window, qtbot, tiny_config_files) -> None:
    from ctxscope.core.units import parse_size

    set_model(window, str(tiny_config_files["llama"]), "16,32")
    # Generous budget: the tiny model fits everything, so the search stops at its 512 positions.
    with qtbot.waitSignal(window.runner.maxContextFound, timeout=TIMEOUT) as found:
        assert window.find_max_context("prefill", parse_size("20GiB", "memory size"), 64, ask=False)
    result = found.args[0]
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    assert result.largest_fit == 512 and result.stopped_at_limit
    assert len(window._trials) == len(result.trials) >= 2
    xs = window.memory.trial_fit.xData
    assert sorted(float(x) for x in xs) == sorted(float(p.length) for p in result.trials if p.fits)
    assert window.memory.budget_line is not None
    assert "Longest prefill that runs within 20.0 GiB: 512 tokens" in window.live_hint.text()


def test_live_plots_show_prediction_and_fit(window, tmp_path) -> None:
    from dataclasses import replace

    from tests.core.test_efficiency import ANALYTIC

    def open_with(lengths: tuple[int, ...], name: str):
        run = make_run("a1", lengths=lengths)
        rows = [{**ANALYTIC["rows"][0], "length": n} for n in lengths]
        run = replace(run, header=replace(run.header, analytic={**ANALYTIC, "rows": rows}))
        path = tmp_path / name
        write_run(run, path)
        window.open_run_file(str(path))
        window.flush_views()
        return window.latency.overlays

    # Four lengths: too few for a fit (issue 12.3): the prediction is drawn, no fit curve.
    overlays = open_with((1024, 2048, 4096, 8192), "four.json")
    assert overlays[("prediction", "prefill")] and not overlays.get(("fit", "prefill"))
    # Five: the fit is drawn over the measured range, its R² in the legend.
    overlays = open_with((1024, 2048, 4096, 8192, 16384), "five.json")
    assert overlays[("prediction", "prefill")]
    [curve, *_] = overlays[("fit", "prefill")]
    xs, _ys = curve.getOriginalDataset()  # getData() is log-transformed
    assert xs.min() == pytest.approx(1024) and xs.max() == pytest.approx(16384)
    assert "fit a+bL+cL² (R²" in curve.name()
    assert window.memory.prediction is not None
    headers = [window.table.horizontalHeaderItem(c).text() for c in range(window.table.columnCount())]
    util = headers.index("utilisation")
    assert any(window.table.item(r, util).text().startswith(("MFU", "BW")) for r in range(window.table.rowCount()))


def test_a_rope_scaling_axis_makes_cells_the_comparison_tells_apart(window, qtbot, tiny_config_files) -> None:
    from ctxscope.gui.matrix_dialog import MatrixDialog

    dialog = MatrixDialog(["sdpa"], current_kernel="sdpa", current_dtype="float32")
    dialog.rope.setText("none, linear:2, YaRN:2.0")
    assert dialog.ropes() == (None, "linear:2", "yarn:2") and dialog.count.text() == "3 runs"
    dialog.rope.setText("none,ntk:2")
    assert "use linear:F, dynamic:F or yarn:F" in dialog.count.text()
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()
    dialog.deleteLater()
    set_model(window, str(tiny_config_files["llama"]), "16,32")
    with qtbot.waitSignal(window.runner.matrixFinished, timeout=TIMEOUT) as done:
        assert window.run_matrix(("float32",), ("sdpa",), ropes=(None, "yarn:2"))
    assert len(done.args[0]) == 2
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    settle(window, qtbot)
    settle(window, qtbot)
    cmp = window.compare.comparison
    assert {k.rope for k in cmp.keys} == {None, "yarn:2"} and cmp.labels == ("RoPE as trained", "RoPE yarn:2")


def test_a_cache_axis_makes_cells_and_the_compare_tab_answers_per_strategy(window, qtbot, tiny_config_files) -> None:
    from ctxscope.gui.matrix_dialog import MatrixDialog

    dialog = MatrixDialog(["sdpa"], current_kernel="sdpa", current_dtype="float32")
    assert dialog.cache_choice() == ("dynamic",) and dialog.count.text() == "1 run"
    next(c for c in dialog.caches if c.text() == "fp8").setChecked(True)
    assert dialog.cache_choice() == ("dynamic", "fp8") and dialog.count.text() == "2 runs"
    dialog.deleteLater()
    set_model(window, str(tiny_config_files["llama"]), "64,128")
    with qtbot.waitSignal(window.runner.matrixFinished, timeout=TIMEOUT) as done:
        assert window.run_matrix(("float32",), ("sdpa",), caches=("dynamic", "fp8"))
    assert len(done.args[0]) == 2
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=TIMEOUT)
    settle(window, qtbot)
    settle(window, qtbot)
    view = window.compare
    cmp = view.comparison
    assert {k.cache for k in cmp.keys} == {"dynamic", "fp8"} and cmp.labels == ("dynamic cache", "fp8 cache")
    assert not view.kv.isHidden()
    assert view.kv.text().startswith("KV strategy — fp8: 4.0× the context of the default float32 cache")
