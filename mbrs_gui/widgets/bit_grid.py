"""The decoded bits as a grid of cells coloured by confidence (and by right/wrong when the message is known)."""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from mbrs_engine.metrics import bit_errors

from .. import theme


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) of a near-square grid holding ``count`` cells."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return cols, max(1, math.ceil(count / cols))


class BitGrid(QWidget):
    """``set_bits(soft, expected=None)``: soft values in [0, 1]; confidence = |soft - 0.5| * 2."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.soft: np.ndarray | None = None
        self.expected: np.ndarray | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(260, 260)

    def set_bits(self, soft: np.ndarray | None, expected: np.ndarray | None = None) -> None:
        self.soft = None if soft is None else np.asarray(soft, dtype=np.float32)
        self.expected = None if expected is None else np.asarray(expected, dtype=np.uint8)
        self.update()

    def errors(self) -> int | None:
        if self.soft is None or self.expected is None:
            return None
        return bit_errors(self.soft, self.expected)

    def cell_color(self, i: int) -> QColor:
        value = float(self.soft[i])
        confidence = min(1.0, abs(value - 0.5) * 2)
        if self.expected is not None:
            base = theme.color("good") if (value > 0.5) == bool(self.expected[i]) else theme.color("bad")
        else:
            base = theme.color("accent") if value > 0.5 else theme.color("warn")
        grey = QColor(128, 128, 128)
        mix = 0.25 + 0.75 * confidence
        return QColor(round(grey.red() + (base.red() - grey.red()) * mix),
                      round(grey.green() + (base.green() - grey.green()) * mix),
                      round(grey.blue() + (base.blue() - grey.blue()) * mix))

    def _geometry(self) -> tuple[int, int, float, float, float]:
        cols, rows = grid_shape(len(self.soft))
        cell = min(self.width() / cols, self.height() / rows)
        left = (self.width() - cell * cols) / 2
        top = (self.height() - cell * rows) / 2
        return cols, rows, cell, left, top

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        if self.soft is None or not len(self.soft):
            painter.setPen(theme.color("muted"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "Decoded bits appear here")
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        cols, _, cell, left, top = self._geometry()
        gap = max(1.0, cell * 0.1)
        painter.setPen(Qt.PenStyle.NoPen)
        for i in range(len(self.soft)):
            r, c = divmod(i, cols)
            painter.setBrush(self.cell_color(i))
            painter.drawRoundedRect(QRectF(left + c * cell + gap / 2, top + r * cell + gap / 2, cell - gap, cell - gap),
                                    cell * 0.15, cell * 0.15)

    def index_at(self, x: float, y: float) -> int | None:
        if self.soft is None:
            return None
        cols, rows, cell, left, top = self._geometry()
        c, r = int((x - left) // cell), int((y - top) // cell)
        i = r * cols + c
        return i if 0 <= c < cols and 0 <= r < rows and i < len(self.soft) else None

    def mouseMoveEvent(self, event) -> None:
        i = self.index_at(event.position().x(), event.position().y())
        if i is None:
            QToolTip.hideText()
            return
        value = float(self.soft[i])
        text = f"bit {i}: soft {value:.3f} → {int(value > 0.5)}, confidence {abs(value - 0.5) * 200:.0f} %"
        if self.expected is not None:
            text += f"; embedded {int(self.expected[i])}" + (" ✓" if (value > 0.5) == bool(self.expected[i]) else " ✗")
        QToolTip.showText(event.globalPosition().toPoint(), text, self)
