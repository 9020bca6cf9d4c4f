"""Entry point of ``mbrs-gui [FILES...]``: the application, its theme and error handling, and the main window."""
from __future__ import annotations

import argparse
import sys

from PySide6.QtWidgets import QApplication

from . import APP_NAME, DESKTOP_ID, __version__
from .context import AppContext
from .errors import install_excepthook, show_error
from .icons import app_icon
from .settings import THEMES, Settings
from .theme import apply_theme


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mbrs-gui", description=f"{APP_NAME}: robust invisible image watermarking")
    parser.add_argument("files", nargs="*", help="images to open in the Embed tab")
    parser.add_argument("--theme", choices=THEMES, help="dark or light (remembered)")
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    return parser.parse_args(argv)


def create_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or [sys.argv[0]])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName("MBRS Studio")
    app.setDesktopFileName(DESKTOP_ID)
    app.setWindowIcon(app_icon())
    return app


def build_window(settings: Settings | None = None, files: list[str] | None = None):
    """The main window on a fresh context (used by :func:`main`, the tests and the screenshot script)."""
    from .main_window import MainWindow

    app = QApplication.instance()
    settings = settings or Settings()
    apply_theme(app, settings.get("theme"))
    ctx = AppContext(settings)
    window = MainWindow(ctx)
    install_excepthook(lambda: window)
    ctx.models.reload()
    if files:
        window.open_paths(files)
    return window


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = create_app([sys.argv[0]])
    settings = Settings()
    if args.theme:
        settings.set("theme", args.theme)
    window = build_window(settings, args.files)
    window.show()
    if settings.load_error:
        show_error(window, settings.load_error)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
