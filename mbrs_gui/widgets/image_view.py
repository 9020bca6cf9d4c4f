"""Zoomable, pannable image views whose zoom and position can be kept in step (:class:`ViewSync`).

Scene coordinates are always the full-resolution pixels of the image, so a
view can show a screen-sized preview first and swap in the full-resolution
image later (:class:`ImageItem` draws whichever suits the zoom level) without
moving.  Wheel: zoom around the cursor; drag: pan; double-click: fit.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPalette, QPen, QPolygonF, QTransform
from PySide6.QtWidgets import (QFrame, QGraphicsItem, QGraphicsPathItem, QGraphicsScene, QGraphicsView,
                               QStyleOptionGraphicsItem)

from .. import theme

MIN_ZOOM, MAX_ZOOM = 0.01, 32.0


class ImageItem(QGraphicsItem):
    """An image of a given full size, drawn from a preview or (when zoomed in) the full-resolution copy."""

    def __init__(self):
        super().__init__()
        self.preview: QImage | None = None
        self.full: QImage | None = None
        self.full_size = (0, 0)
        self.clip_fraction: float | None = None  # draw only the left part (split view)

    def set_images(self, preview: QImage | None, full: QImage | None = None, full_size: tuple[int, int] | None = None):
        self.prepareGeometryChange()
        self.preview, self.full = preview, full
        base = full if full is not None else preview
        self.full_size = full_size or ((base.width(), base.height()) if base is not None else (0, 0))
        self.update()

    def set_full(self, full: QImage | None) -> None:
        self.full = full
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, *self.full_size)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if self.preview is None and self.full is None:
            return
        rect = self.boundingRect()
        exposed = option.exposedRect.intersected(rect)
        if self.clip_fraction is not None:
            exposed = exposed.intersected(QRectF(0, 0, rect.width() * self.clip_fraction, rect.height()))
        if exposed.isEmpty():
            return
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        preview_scale = self.preview.width() / max(rect.width(), 1) if self.preview is not None else 0.0
        use_full = self.full is not None and (self.preview is None or lod > preview_scale * 1.02)
        image = self.full if use_full else self.preview
        scale = image.width() / max(rect.width(), 1)
        source = QRectF(exposed.left() * scale, exposed.top() * scale, exposed.width() * scale,
                        exposed.height() * scale)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, lod * (1 / scale) < 1.0)
        painter.drawImage(exposed, image, source)


class ImageView(QGraphicsView):
    """One image in a view with zoom and pan; ``view_changed`` fires on every zoom or scroll."""

    view_changed = Signal()
    zoom_changed = Signal(float)

    def __init__(self, caption: str = "", placeholder: str = "", parent=None):
        super().__init__(parent)
        self.caption, self.placeholder = caption, placeholder
        self.setScene(QGraphicsScene(self))
        self.item = ImageItem()
        self.scene().addItem(self.item)
        self.outlines = QGraphicsPathItem(self.item)  # polygons drawn over the image (set_outlines), cut to it
        self.item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape)
        pen = QPen(QColor(255, 200, 0, 220), 2)
        pen.setCosmetic(True)  # the same width at every zoom
        self.outlines.setPen(pen)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAcceptDrops(False)  # drops go to the tab around the view
        self.setMinimumSize(160, 120)
        self._fitted = True
        self.horizontalScrollBar().valueChanged.connect(lambda _: self.view_changed.emit())
        self.verticalScrollBar().valueChanged.connect(lambda _: self.view_changed.emit())

    # ------------------------------------------------------------ content

    def has_image(self) -> bool:
        return self.item.preview is not None or self.item.full is not None

    def content_rect(self) -> QRectF:
        """The image's rectangle in scene coordinates (its full-resolution pixels): what fit and centre use."""
        return self.item.boundingRect()

    def set_images(self, preview: QImage | None, full: QImage | None = None,
                   full_size: tuple[int, int] | None = None) -> None:
        """Show an image (a preview and/or the full-resolution one); refits when the size changes."""
        old = self.content_rect()
        self.item.set_images(preview, full, full_size)
        self._content_changed(old)

    def _content_changed(self, old: QRectF) -> None:
        self.scene().setSceneRect(self.content_rect())
        if self.content_rect() != old or self._fitted:
            self.fit()
        self.viewport().update()

    def set_full(self, full: QImage | None) -> None:
        self.item.set_full(full)
        self.viewport().update()

    def clear(self) -> None:
        self.set_images(None)
        self.set_outlines([])

    def set_outlines(self, polygons) -> None:
        """Draw these polygons (each a sequence of (x, y) image pixels) over the image; [] removes them."""
        path = QPainterPath()
        for corners in polygons:
            path.addPolygon(QPolygonF([QPointF(x, y) for x, y in corners]))
            path.closeSubpath()
        self.outlines.setPath(path)
        self.viewport().update()

    # ------------------------------------------------------------ zoom

    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        if not self.has_image():
            return
        self.fitInView(self.content_rect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._fitted = True
        self._emit_zoom()

    def set_zoom(self, zoom: float) -> None:
        zoom = max(MIN_ZOOM, min(MAX_ZOOM, zoom))
        anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setTransform(QTransform.fromScale(zoom, zoom))
        self.setTransformationAnchor(anchor)
        self._fitted = False
        self._emit_zoom()

    def zoom_by(self, factor: float) -> None:
        target = max(MIN_ZOOM, min(MAX_ZOOM, self.zoom() * factor))
        if target != self.zoom():
            self.scale(target / self.zoom(), target / self.zoom())
            self._fitted = False
            self._emit_zoom()

    def _emit_zoom(self) -> None:
        self.zoom_changed.emit(self.zoom())
        self.view_changed.emit()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25 ** steps)
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:
        self.fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    # ------------------------------------------------------------ position (as a fraction of the image)

    def center_fraction(self) -> QPointF:
        rect = self.content_rect()
        center = self.mapToScene(self.viewport().rect().center())
        return QPointF(center.x() / max(rect.width(), 1), center.y() / max(rect.height(), 1))

    def set_center_fraction(self, point: QPointF) -> None:
        rect = self.content_rect()
        self.centerOn(point.x() * rect.width(), point.y() * rect.height())

    # ------------------------------------------------------------ painting

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, theme.color("canvas"))

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        painter.save()
        painter.resetTransform()
        area = self.viewport().rect()
        text_color = self.palette().color(QPalette.ColorRole.Text)
        if not self.has_image() and self.placeholder:
            painter.setPen(theme.color("muted"))
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() * 1.2)
            painter.setFont(font)
            painter.drawText(area.adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self.placeholder)
        if self.caption:
            self._draw_caption(painter, self.caption, area.topLeft() + QPointF(8, 8).toPoint(), text_color)
        painter.restore()

    @staticmethod
    def _draw_caption(painter: QPainter, text: str, top_left, text_color: QColor) -> None:
        metrics = painter.fontMetrics()
        box = QRectF(top_left.x(), top_left.y(), metrics.horizontalAdvance(text) + 14, metrics.height() + 6)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)


class ViewSync:
    """Keeps the zoom and the centre (as a fraction of each image) of several views in step; fitted views
    each fit their own size."""

    def __init__(self, views: list[ImageView] | None = None):
        self.views: list[ImageView] = []
        self._busy = False
        for view in views or []:
            self.add(view)

    def add(self, view: ImageView) -> None:
        self.views.append(view)
        view.view_changed.connect(lambda v=view: self._follow(v))

    def _follow(self, leader: ImageView) -> None:
        if self._busy or not leader.isVisible():
            return
        self._busy = True
        try:
            if leader._fitted:  # "fit" means each view fits its own size (a narrow one must not shrink a big one)
                for view in self.views:
                    if view is not leader and view.has_image():
                        view.fit()
                return
            center, transform = leader.center_fraction(), leader.transform()
            for view in self.views:
                if view is not leader and view.has_image():
                    view._fitted = leader._fitted
                    view.setTransform(transform)
                    view.set_center_fraction(center)
        finally:
            self._busy = False

    def fit_all(self) -> None:
        for view in self.views:
            view.fit()

    def zoom_all(self, factor: float) -> None:
        leader = next((v for v in self.views if v.isVisible() and v.has_image()), None)
        if leader is not None:
            leader.zoom_by(factor)

    def actual_size(self) -> None:
        leader = next((v for v in self.views if v.isVisible() and v.has_image()), None)
        if leader is not None:
            leader.set_zoom(1.0)
