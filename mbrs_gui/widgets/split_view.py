"""A before/after view: the original left of a draggable divider, the watermarked image right of it."""
from __future__ import annotations

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QGraphicsView

from .image_view import ImageItem, ImageView

_GRAB_PX = 8


class SplitView(ImageView):
    """``set_images`` shows the watermarked image; ``set_original`` the one left of the divider."""

    split_changed = Signal(float)

    def __init__(self, parent=None):
        super().__init__("", "", parent)
        self.original = ImageItem()
        self._split = 0.5
        self.original.setZValue(1)
        self.scene().addItem(self.original)
        self._dragging = False
        self.setMouseTracking(True)

    @property
    def split(self) -> float:
        return self._split

    def set_split(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if fraction != self._split:
            self._split = fraction
            self._clip_original()
            self.viewport().update()
            self.split_changed.emit(fraction)

    def set_images(self, preview: QImage | None, full: QImage | None = None,
                   full_size: tuple[int, int] | None = None) -> None:
        super().set_images(preview, full, full_size)
        self._clip_original()

    def set_original(self, preview: QImage | None, full: QImage | None = None,
                     full_size: tuple[int, int] | None = None) -> None:
        old = self.content_rect()
        self.original.set_images(preview, full, full_size)
        self._clip_original()
        self._content_changed(old)

    def _clip_original(self) -> None:
        """Before there is a watermarked image, the original is shown whole (no divider)."""
        self.original.clip_fraction = self._split if self._has_marked() else None
        self.original.update()

    def _has_marked(self) -> bool:
        return super().has_image()

    def content_rect(self):
        return self.item.boundingRect() if self._has_marked() else self.original.boundingRect()

    def set_original_full(self, full: QImage | None) -> None:
        self.original.set_full(full)
        self.viewport().update()

    def has_image(self) -> bool:
        return super().has_image() or self.original.preview is not None

    def _divider_x(self) -> float:
        width = self.item.boundingRect().width()
        return self.mapFromScene(QPointF(width * self.split, 0)).x()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._has_marked() and abs(event.position().x() - self._divider_x()) <= _GRAB_PX:
            self._dragging = True
            self.setDragMode(QGraphicsView.DragMode.NoDrag)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._dragging:
            scene = self.mapToScene(event.position().toPoint())
            self.set_split(scene.x() / max(self.item.boundingRect().width(), 1))
            event.accept()
            return
        near = self._has_marked() and abs(event.position().x() - self._divider_x()) <= _GRAB_PX
        self.viewport().setCursor(Qt.CursorShape.SplitHCursor if near else Qt.CursorShape.OpenHandCursor)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._dragging:
            self._dragging = False
            self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def drawForeground(self, painter: QPainter, rect) -> None:
        super().drawForeground(painter, rect)
        if not self._has_marked():
            if self.has_image():
                painter.save()
                painter.resetTransform()
                self._draw_caption(painter, "Original", QPointF(8, 8).toPoint(), QColor("white"))
                painter.restore()
            return
        painter.save()
        painter.resetTransform()
        x = self._divider_x()
        height = self.viewport().height()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor(255, 255, 255, 220), 2))
        painter.drawLine(QPointF(x, 0), QPointF(x, height))
        painter.setBrush(QColor(255, 255, 255, 230))
        painter.setPen(QPen(QColor(0, 0, 0, 120), 1))
        painter.drawEllipse(QPointF(x, height / 2), 9, 9)
        painter.setPen(QColor(40, 40, 40))
        painter.drawText(int(x) - 9, int(height / 2) - 9, 18, 18, Qt.AlignmentFlag.AlignCenter, "⇔")
        self._draw_caption(painter, "Original", QPointF(8, 8).toPoint(), QColor("white"))
        metrics = painter.fontMetrics()
        self._draw_caption(painter, "Watermarked",
                           QPointF(self.viewport().width() - metrics.horizontalAdvance("Watermarked") - 22, 8).toPoint(),
                           QColor("white"))
        painter.restore()
