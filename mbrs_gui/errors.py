"""Error reporting: a dialog with a plain message and the details (traceback) behind a button, never a crash.

:func:`show_error` is the one way the app reports a failure.
:func:`install_excepthook` routes any uncaught exception (a bug in a slot, say)
to that dialog instead of letting the app die.
"""
from __future__ import annotations

import sys
import traceback

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from . import APP_NAME


def describe(exc: BaseException) -> str:
    """A one-line, plain message for an exception (the engine's errors already are)."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "Not enough memory for this operation (try a smaller image)."
    if isinstance(exc, (OSError, ValueError, RuntimeError)) or type(exc).__module__.startswith("mbrs_engine"):
        return text[0].upper() + text[1:] if text else text
    return f"{type(exc).__name__}: {text}"


def details_of(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def show_error(parent: QWidget | None, message: str, details: str | None = None, title: str | None = None,
               icon: QMessageBox.Icon = QMessageBox.Icon.Critical) -> None:
    """A modal error dialog; ``details`` (e.g. a traceback) is hidden behind "Show Details..."."""
    box = QMessageBox(icon, title or APP_NAME, message, QMessageBox.StandardButton.Ok, parent)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if details:
        box.setDetailedText(details)
    box.exec()


def show_warning(parent: QWidget | None, message: str, details: str | None = None) -> None:
    """A modal warning: the work was done, but not as well as it should have been."""
    show_error(parent, message, details, icon=QMessageBox.Icon.Warning)


def show_exception(parent: QWidget | None, exc: BaseException, context: str | None = None) -> None:
    message = describe(exc)
    show_error(parent, f"{context}\n\n{message}" if context else message, details_of(exc))


class _Relay(QObject):
    """Brings exceptions raised in any thread to the GUI thread."""

    raised = Signal(object, str)


_relay: _Relay | None = None
_parent_getter = lambda: None  # noqa: E731


def install_excepthook(parent_getter=lambda: None) -> None:
    """Show uncaught exceptions in a dialog (the hook found at installation still prints them to stderr).

    Installing again only changes the dialog's parent.
    """
    global _relay, _parent_getter
    _parent_getter = parent_getter
    if _relay is not None and getattr(sys.excepthook, "_mbrs_gui", False):
        return
    _relay = _Relay()
    _relay.raised.connect(lambda exc, details: _report(_parent_getter(), exc, details),
                          Qt.ConnectionType.QueuedConnection)
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            QApplication.quit()
            return
        previous(exc_type, exc, tb)
        _relay.raised.emit(exc, "".join(traceback.format_exception(exc_type, exc, tb)))

    hook._mbrs_gui = True
    sys.excepthook = hook


_reporting = False


def _report(parent: QWidget | None, exc: BaseException, details: str) -> None:
    global _reporting
    if _reporting:  # an error while the dialog is up: the first dialog is enough
        return
    _reporting = True
    try:
        show_error(parent, f"Something went wrong, but your work is safe.\n\n{describe(exc)}", details,
                   title=f"{APP_NAME}: unexpected error")
    finally:
        _reporting = False
