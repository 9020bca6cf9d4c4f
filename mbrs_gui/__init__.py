"""MBRS Studio desktop app (PySide6): embed, attack-and-verify, train and manage watermarking models.

Start it with ``mbrs-gui [FILES...]`` (:func:`mbrs_gui.app.main`).  The GUI
calls only the public API of :mod:`mbrs_engine`; every network call and file
operation runs off the GUI thread (:mod:`mbrs_gui.workers`).
"""
from mbrs_engine import __version__  # first: the engine sets torch's thread-waiting policy before torch loads

APP_NAME = "MBRS Studio"
APP_ID = "io.github.mbrs_studio.MBRSStudio"  # the AppStream id (packaging/*.metainfo.xml)
DESKTOP_ID = "mbrs-studio"  # packaging/mbrs-studio.desktop

__all__ = ["APP_ID", "APP_NAME", "DESKTOP_ID", "__version__"]
