"""The message field's capacity meter ("12 of 20 characters") and the validator that refuses text that does not fit."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def usage_text(text: str, capacity: int) -> str:
    used = utf8_length(text)
    if used == len(text):
        return f"{used} of {capacity} characters"
    return f"{len(text)} characters = {used} of {capacity} bytes (UTF-8)"


class Utf8LimitValidator(QValidator):
    """Accepts text whose UTF-8 encoding fits ``capacity`` bytes; anything longer is refused as typed, and
    ``refused`` says so (the field would otherwise just ignore the key)."""

    refused = Signal()

    def __init__(self, capacity: int = 0, parent=None):
        super().__init__(parent)
        self.capacity = capacity

    def validate(self, text: str, pos: int):
        if utf8_length(text) <= self.capacity:
            return QValidator.State.Acceptable, text, pos
        self.refused.emit()
        return QValidator.State.Invalid, text, pos


class CapacityMeter(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        self.label = QLabel()
        self.label.setObjectName("Muted")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.label)
        self.set_usage("", 0)

    def show_full(self, capacity: int) -> None:
        """Say that a keystroke or a paste was refused because the message is full."""
        self.label.setText(f"Full: the model holds at most {capacity} bytes of text (that input was not added)")
        self.label.setObjectName("Bad")
        self.label.style().unpolish(self.label)
        self.label.style().polish(self.label)

    def set_usage(self, text: str, capacity: int) -> None:
        if self.label.objectName() != "Muted":
            self.label.setObjectName("Muted")
            self.label.style().unpolish(self.label)
            self.label.style().polish(self.label)
        self.bar.setRange(0, max(capacity, 1))
        self.bar.setValue(min(utf8_length(text), capacity))
        self.label.setText(usage_text(text, capacity) if capacity else "no model")
