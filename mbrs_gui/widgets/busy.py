"""The status bar's busy indicator: what is running, its progress, and a Cancel button."""
from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from ..workers import Task, TaskRunner


class BusyIndicator(QWidget):
    """Follows a :class:`TaskRunner`; shows the latest visible task (busy bar or its progress)."""

    def __init__(self, runner: TaskRunner, parent=None):
        super().__init__(parent)
        self.runner = runner
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setFixedWidth(160)
        self.bar.setMaximumHeight(14)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel the running operation")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.task: Task | None = None
        runner.started.connect(self._refresh)
        runner.ended.connect(self._refresh)
        self._refresh()

    def _refresh(self, *_args) -> None:
        active = self.runner.active()
        task = active[-1] if active else None
        if self.task is not None and self.task is not task:
            try:
                self.task.progressed.disconnect(self._progress)
            except (RuntimeError, TypeError):
                pass
        if task is not None and task is not self.task:
            task.progressed.connect(self._progress)
        self.task = task
        self.setVisible(task is not None)
        if task is not None:
            more = f" (+{len(active) - 1})" if len(active) > 1 else ""
            self.label.setText(f"{task.name}…{more}")
            self.cancel_button.setEnabled(task.cancellable)
            self._progress(*task.last_progress)

    def _progress(self, done: int, total: int, text: str) -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        else:
            self.bar.setRange(0, 0)  # busy
        if text and self.task is not None:
            self.label.setText(text)

    def cancel(self) -> None:
        if self.task is not None and self.task.cancellable:
            self.task.cancel()
            self.label.setText(f"{self.task.name}: cancelling…")
