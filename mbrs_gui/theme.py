"""Dark and light themes (qdarkstyle's two palettes), applied to the whole application and to the plots."""
from __future__ import annotations

import os

os.environ.setdefault("QT_API", "pyside6")  # qdarkstyle goes through QtPy: make it pick PySide6

import pyqtgraph as pg  # noqa: E402
import qdarkstyle  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from .settings import THEMES  # noqa: E402

#: Colours the custom widgets use, per theme (accent, good, bad, muted text, plot background, plot foreground).
PALETTES = {
    "dark": {"accent": "#3daee9", "good": "#4caf50", "bad": "#e5534b", "muted": "#8a9299", "warn": "#d9a441",
             "plot_bg": "#19232D", "plot_fg": "#C9CDD0", "canvas": "#10171e"},
    "light": {"accent": "#1a72bb", "good": "#2e7d32", "bad": "#c62828", "muted": "#5f6b76", "warn": "#a66b00",
              "plot_bg": "#FAFAFA", "plot_fg": "#19232D", "canvas": "#e6e9ec"},
}
#: Extra rules on top of qdarkstyle, for the app's own object names.
_EXTRA = """
QLabel#Banner {{ background: {warn}; color: #111; border-radius: 4px; padding: 8px 10px; font-weight: 600; }}
QLabel#BigMessage {{ font-size: 18px; font-weight: 600; }}
QLabel#Metric {{ font-size: 15px; font-weight: 600; }}
QLabel#Muted {{ color: {muted}; }}
QLabel#Good {{ color: {good}; font-weight: 700; }}
QLabel#Bad {{ color: {bad}; font-weight: 700; }}
QLabel#Title {{ font-size: 14px; font-weight: 700; }}
QTabBar::tab:top:selected, QTabBar::tab:top:!selected {{ padding: 7px 26px; min-width: 70px; font-size: 13px; }}
"""

_current = "dark"


def current() -> str:
    return _current


def color(name: str) -> QColor:
    return QColor(PALETTES[_current][name])


def apply_theme(app: QApplication, name: str) -> None:
    """Style the application (and pyqtgraph's defaults) with the named theme."""
    global _current
    if name not in THEMES:
        raise ValueError(f"unknown theme {name!r} (choose from {', '.join(THEMES)})")
    _current = name
    palette = qdarkstyle.DarkPalette if name == "dark" else qdarkstyle.LightPalette
    sheet = qdarkstyle.load_stylesheet(qt_api="pyside6", palette=palette)
    app.setStyleSheet(sheet + _EXTRA.format(**PALETTES[name]))
    pg.setConfigOptions(background=PALETTES[name]["plot_bg"], foreground=PALETTES[name]["plot_fg"], antialias=True)
