"""The message field's capacity meter ("12 of 20 characters") and the validator that refuses text that does not fit."""
from __future__ import annotations

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
    """Accepts text whose UTF-8 encoding fits ``capacity`` bytes; anything longer is refused as typed."""

    def __init__(self, capacity: int = 0, parent=None):
        super().__init__(parent)
        self.capacity = capacity

    def validate(self, text: str, pos: int):
        state = QValidator.State.Acceptable if utf8_length(text) <= self.capacity else QValidator.State.Invalid
        return state, text, pos


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

    def set_usage(self, text: str, capacity: int) -> None:
        self.bar.setRange(0, max(capacity, 1))
        self.bar.setValue(min(utf8_length(text), capacity))
        self.label.setText(usage_text(text, capacity) if capacity else "no model")
