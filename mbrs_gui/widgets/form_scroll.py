"""Forms in a vertical scroll area: never cut off on the right (:class:`FormScrollArea`), and a mouse wheel over a
spin box or combo box scrolls the form unless that field has the keyboard focus (:func:`guard_wheel`: a user
scrolling past "Time budget" must not set it to 24 h)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtWidgets import (QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QScrollArea,
                               QSizePolicy, QWidget)


class FormScrollArea(QScrollArea):
    """Scrolls a form vertically and is always as wide as the form needs beside the scroll bar (at least
    ``width``), following the form when its minimum width changes (a theme, a section shown, a longer text)."""

    def __init__(self, form: QWidget, width: int, parent=None):
        super().__init__(parent)
        self.base_width = width
        self.setWidget(form)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        form.installEventFilter(self)

    def _width(self) -> int:
        needed = self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
        return max(self.base_width, needed + 2 * self.frameWidth())

    def sizeHint(self) -> QSize:
        return QSize(self._width(), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(self._width(), super().minimumSizeHint().height())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)


class _WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget) or watched.hasFocus():
            return False
        area = watched.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None:  # the form scrolls instead
            QApplication.sendEvent(area.viewport(), event)
        return True


def guard_wheel(form: QWidget) -> None:
    """Make every spin box and combo box inside ``form`` take the wheel only once clicked or tabbed into."""
    guard = _WheelGuard(form)
    for field in form.findChildren(QAbstractSpinBox) + form.findChildren(QComboBox):
        field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        field.installEventFilter(guard)
