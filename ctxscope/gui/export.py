"""Exporting from the app: plots as PNG or SVG (file or clipboard) and reports.

pyqtgraph 0.14.0's ``SVGExporter`` fails under Qt 6.11 (``ValueError`` in
``correctCoordinates``, pyqtgraph issue #3495). :class:`QtSvgExporter` renders the scene
through Qt's own SVG paint engine instead. It replaces pyqtgraph's exporter in the
Export dialog (the plots' right-click menu) only where that one is found broken, by
trying it once on a small plot: a fixed pyqtgraph keeps its own."""

from __future__ import annotations

import functools
from pathlib import Path

import pyqtgraph as pg
from pyqtgraph.exporters import Exporter, ImageExporter
from pyqtgraph.parametertree import Parameter
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData, QRectF, QSize
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator


class QtSvgExporter(Exporter):
    """SVG of a pyqtgraph scene or item, drawn by ``QSvgGenerator`` (vector paths and text)."""

    Name = "Scalable Vector Graphics (SVG)"
    allowCopy = True

    def __init__(self, item) -> None:
        super().__init__(item)
        self.params = Parameter.create(name="params", type="group", children=[])

    def parameters(self):  # pyqtgraph API
        return self.params

    def export(self, fileName=None, toBytes=False, copy=False):  # noqa: N803 (pyqtgraph API)
        if fileName is None and not toBytes and not copy:
            return self.fileSaveDialog(filter="Scalable Vector Graphics (*.svg)")
        source = self.getSourceRect()
        width, height = max(1, int(source.width())), max(1, int(source.height()))
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        gen = QSvgGenerator()
        gen.setOutputDevice(buf)
        gen.setSize(QSize(width, height))
        gen.setViewBox(QRectF(0, 0, width, height))
        gen.setTitle("ctxscope plot")
        # Qt's SVG engine assumes 90 dpi; pyqtgraph lays out in screen pixels. Without
        # the view's own resolution the data are drawn ~7% off their axes.
        views = self.getScene().views()
        gen.setResolution(int(views[0].logicalDpiX()) if views else 96)
        painter = QPainter(gen)
        try:
            self.setExportMode(True, {"antialias": True, "background": None, "painter": painter})
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            self.getScene().render(painter, QRectF(0, 0, width, height), QRectF(source))
        finally:
            self.setExportMode(False)
            painter.end()
        buf.close()
        svg = bytes(data.data())
        if toBytes:
            return svg
        if copy:
            mime = QMimeData()
            mime.setData("image/svg+xml", svg)
            QGuiApplication.clipboard().setMimeData(mime)
            return None
        Path(fileName).write_bytes(svg)
        return None


@functools.cache  # once per process: the library does not change while it runs
def native_svg_broken() -> bool:
    """Whether pyqtgraph's own ``SVGExporter`` fails here (pyqtgraph #3495): tried once
    on a small off-screen plot with a curve, a legend and axes."""
    from pyqtgraph.exporters import SVGExporter

    plot = pg.PlotItem()
    plot.addLegend()
    plot.plot([1.0, 2.0, 3.0], [1.0, 4.0, 9.0], name="probe")
    try:
        SVGExporter(plot).export(toBytes=True)
    except Exception:  # any failure of the library's exporter means: use ours
        return True
    return False


def install_svg_workaround(broken: bool | None = None) -> bool:
    """Swap pyqtgraph's SVG exporter for :class:`QtSvgExporter` where it is broken
    (idempotent); ``broken`` overrides the check. Returns whether ours is installed."""
    from pyqtgraph.exporters import SVGExporter

    if not (native_svg_broken() if broken is None else broken):
        return QtSvgExporter in Exporter.Exporters
    exporters = Exporter.Exporters
    if QtSvgExporter not in exporters:
        index = exporters.index(SVGExporter) if SVGExporter in exporters else len(exporters)
        exporters.insert(index, QtSvgExporter)
    if SVGExporter in exporters:
        exporters.remove(SVGExporter)
    return True


def plot_svg(plot: pg.PlotWidget) -> bytes:
    return QtSvgExporter(plot.getPlotItem()).export(toBytes=True)


def plot_image(plot: pg.PlotWidget, scale: float = 2.0) -> QImage:
    """A PNG-ready image of a plot at ``scale`` × its on-screen size (sharp on paper)."""
    exporter = ImageExporter(plot.getPlotItem())
    exporter.parameters()["width"] = int(plot.getPlotItem().sceneBoundingRect().width() * scale)
    return exporter.export(toBytes=True)


def save_plot(plot: pg.PlotWidget, path: Path) -> None:
    """Write a plot as ``.svg`` or an image (``.png``, ``.jpg``) by the file's suffix."""
    if path.suffix.lower() == ".svg":
        path.write_bytes(plot_svg(plot))
    elif not plot_image(plot).save(str(path)):
        raise OSError(f"cannot write {path}")


def copy_plot(plot: pg.PlotWidget) -> None:
    """Put the plot on the clipboard as an image and as SVG (the pasting app picks)."""
    mime = QMimeData()
    mime.setImageData(plot_image(plot))
    mime.setData("image/svg+xml", plot_svg(plot))
    QGuiApplication.clipboard().setMimeData(mime)


def export_runs(entries: list, path: Path, *, baseline: int = 0) -> None:
    """Write ``(run, maps file)`` pairs as a report chosen by ``path``'s suffix
    (``.html``, ``.md``, ``.json``, ``.csv``); several runs make a comparison."""
    from ctxscope.core.predict.predictions import predictions_for
    from ctxscope.report.build import format_for, render

    runs = [run for run, _ in entries]
    fmt = format_for(None, path)
    text = render(runs, fmt, baseline=baseline, maps={run.id: maps for run, maps in entries},
                  predictions=predictions_for(runs) if fmt == "html" else None)
    tmp = path.with_name(path.name + ".part")  # a half-written report never replaces a good one
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
