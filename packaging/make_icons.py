"""Render the SVG master icon to the PNG sizes desktops ask for (hicolor theme layout).

Run after editing resources/icons/ctxscope.svg:  python packaging/make_icons.py
The PNGs are committed, so installing ctxscope needs no SVG renderer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ROOT = Path(__file__).resolve().parent.parent / "resources" / "icons"


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication(sys.argv[:1])  # noqa: F841 (QPainter needs an application)
    renderer = QSvgRenderer(str(ROOT / "ctxscope.svg"))
    if not renderer.isValid():
        print("cannot read ctxscope.svg", file=sys.stderr)
        return 1
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        out = ROOT / "hicolor" / f"{size}x{size}" / "apps" / "ctxscope.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(out))
        print(out.relative_to(ROOT.parent.parent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
