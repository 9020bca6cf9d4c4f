"""Editor of an ordered attack chain: add attacks from a menu, set their parameters, reorder, remove."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QDoubleSpinBox, QFrame, QHBoxLayout, QLabel, QMenu, QToolButton, QVBoxLayout,
                               QWidget)

from ..attack_chain import KINDS, Chain, Step


class _StepRow(QFrame):
    VALUES_BESIDE_TITLE = 2  # kinds with more values show them on a second line

    changed = Signal()
    move = Signal(object, int)
    remove = Signal(object)

    def __init__(self, step: Step, parent=None):
        super().__init__(parent)
        self.kind = KINDS[step.kind]
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 3, 3, 3)
        layout.setSpacing(2)
        top = QHBoxLayout()
        layout.addLayout(top)
        title = QLabel(self.kind.label)
        title.setToolTip(self.kind.help)
        title.setMinimumWidth(70)
        top.addWidget(title, 1)
        # up to two values beside the title; more (a crop's area, aspect and place) on a line of their own, so that
        # the row stays as narrow as the panel and its buttons in view
        values = top if len(self.kind.params) <= self.VALUES_BESIDE_TITLE else QHBoxLayout()
        self.spins: list[QDoubleSpinBox] = []
        for param, value in zip(self.kind.params, step.values):
            spin = QDoubleSpinBox()
            spin.setRange(param.minimum, param.maximum)
            spin.setSingleStep(param.step)
            spin.setDecimals(param.decimals)
            spin.setSuffix(param.unit)
            spin.setValue(value)
            spin.setToolTip(param.name)
            spin.setKeyboardTracking(False)
            spin.setMaximumWidth(78 if values is top else 68)
            spin.valueChanged.connect(self.changed)
            values.addWidget(spin)
            self.spins.append(spin)
        for text, tip, slot in (("↑", "Move up", lambda: self.move.emit(self, -1)),
                                ("↓", "Move down", lambda: self.move.emit(self, 1)),
                                ("✕", "Remove", lambda: self.remove.emit(self))):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setAutoRaise(True)
            button.clicked.connect(slot)
            top.addWidget(button)
        if values is not top:
            values.addStretch(1)
            layout.addLayout(values)

    def step(self) -> Step:
        return Step(self.kind.name, tuple(s.value() for s in self.spins))


class AttackChainEditor(QWidget):
    """``chain()`` gives the :class:`~mbrs_gui.attack_chain.Chain`; ``changed`` fires on any edit."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[_StepRow] = []
        self.rows_layout = QVBoxLayout()
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.setSpacing(3)
        self.empty = QLabel("No attack: the image is decoded as it is.")
        self.empty.setObjectName("Muted")
        self.add_button = QToolButton()
        self.add_button.setText("Add attack ▾")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.add_button)
        for kind in KINDS.values():
            action = QAction(kind.label, menu)
            action.setToolTip(kind.help)
            action.triggered.connect(lambda _=False, k=kind.name: self.add(Step(k)))
            menu.addAction(action)
        self.add_button.setMenu(menu)
        clear = QToolButton()
        clear.setText("Clear")
        clear.clicked.connect(lambda: self.set_chain(Chain()))
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(clear)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.empty)
        layout.addLayout(self.rows_layout)
        layout.addLayout(buttons)

    def chain(self) -> Chain:
        return Chain([row.step() for row in self.rows])

    def set_chain(self, chain: Chain) -> None:
        for row in self.rows:
            row.deleteLater()
        self.rows = []
        for step in chain.steps:
            self._insert(step)
        self._relayout()

    def add(self, step: Step) -> None:
        self._insert(step)
        self._relayout()

    def _insert(self, step: Step) -> None:
        row = _StepRow(step)
        row.changed.connect(self.changed)
        row.move.connect(self._move)
        row.remove.connect(self._remove)
        self.rows.append(row)

    def _move(self, row: _StepRow, offset: int) -> None:
        i = self.rows.index(row)
        j = min(len(self.rows) - 1, max(0, i + offset))
        if i != j:
            self.rows[i], self.rows[j] = self.rows[j], self.rows[i]
            self._relayout()

    def _remove(self, row: _StepRow) -> None:
        self.rows.remove(row)
        row.deleteLater()
        self._relayout()

    def _relayout(self) -> None:
        while self.rows_layout.count():
            self.rows_layout.takeAt(0)
        for row in self.rows:
            self.rows_layout.addWidget(row)
        self.empty.setVisible(not self.rows)
        self.changed.emit()
