"""A warning banner with an action button, e.g. "no model installed — open the Models tab"."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton


class Banner(QFrame):
    action = Signal()

    def __init__(self, action_text: str = "", parent=None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setObjectName("Banner")
        self.label.setWordWrap(True)
        self.button = QPushButton(action_text)
        self.button.clicked.connect(self.action)
        self.button.setVisible(bool(action_text))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.hide()

    def show_message(self, text: str | None) -> None:
        self.label.setText(text or "")
        self.setVisible(bool(text))
