"""The app icon: ``assets/icons/mbrs-studio.svg`` (installed as package data of ``mbrs_assets``) and its PNG renders."""
from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from PySide6.QtGui import QIcon

ICON_NAME = "mbrs-studio"
PNG_SIZES = (16, 32, 48, 64, 128, 256, 512)


def icons_dir() -> Path:
    try:
        folder = Path(os.fspath(importlib.resources.files("mbrs_assets"))) / "icons"
        if folder.is_dir():
            return folder
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "assets" / "icons"


def app_icon() -> QIcon:
    """The icon from the PNG renders (crisp at each size), else the SVG."""
    folder = icons_dir()
    icon = QIcon()
    for size in PNG_SIZES:
        png = folder / f"{ICON_NAME}-{size}.png"
        if png.is_file():
            icon.addFile(str(png))
    if icon.isNull():
        icon = QIcon(str(folder / f"{ICON_NAME}.svg"))
    return icon
