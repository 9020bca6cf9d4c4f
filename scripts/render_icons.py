"""Render assets/icons/mbrs-studio.svg to PNGs (16..512 px) with Qt's SVG renderer: python scripts/render_icons.py"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mbrs_gui.icons import ICON_NAME, PNG_SIZES  # noqa: E402


def main() -> None:
    QGuiApplication.instance() or QGuiApplication(sys.argv)  # the renderer needs an application
    folder = ROOT / "assets" / "icons"
    renderer = QSvgRenderer(str(folder / f"{ICON_NAME}.svg"))
    if not renderer.isValid():
        raise SystemExit("the SVG icon could not be read")
    for size in PNG_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        out = folder / f"{ICON_NAME}-{size}.png"
        image.save(str(out))
        print(out.relative_to(ROOT))


if __name__ == "__main__":
    main()
