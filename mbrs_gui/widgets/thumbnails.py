"""Thumbnail widgets: a strip of open images (with saved/unsaved marks) and a captioned image grid."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QListView, QListWidget, QListWidgetItem, QVBoxLayout, QWidget


class ImageStrip(QListWidget):
    """Horizontal strip of thumbnails; item data holds the caller's key."""

    THUMB = 72

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(self.THUMB, self.THUMB))
        self.setFixedHeight(self.THUMB + 50)
        self.setSpacing(4)
        self.setUniformItemSizes(True)
        self.setHorizontalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def add(self, key, caption: str, thumb: QImage, tooltip: str = "") -> QListWidgetItem:
        item = QListWidgetItem(QPixmap.fromImage(thumb), caption)
        item.setData(Qt.ItemDataRole.UserRole, key)
        item.setToolTip(tooltip)
        item.setSizeHint(QSize(self.THUMB + 24, self.THUMB + 36))
        self.addItem(item)
        return item

    def find(self, key) -> QListWidgetItem | None:
        for i in range(self.count()):
            if self.item(i).data(Qt.ItemDataRole.UserRole) == key:
                return self.item(i)
        return None


class ImageGrid(QWidget):
    """A grid of small images with captions, e.g. the training folder's samples or the trainer's samples."""

    def __init__(self, columns: int = 4, side: int = 96, parent=None):
        super().__init__(parent)
        self.columns, self.side = columns, side
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(6)
        self.labels: list[QLabel] = []

    def set_images(self, images: list[QImage], captions: list[str] | None = None) -> None:
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.labels = []
        for i, image in enumerate(images):
            cell = QWidget()
            layout = QVBoxLayout(cell)
            layout.setContentsMargins(0, 0, 0, 0)
            layout.setSpacing(2)
            picture = QLabel()
            picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
            picture.setPixmap(QPixmap.fromImage(image).scaled(self.side, self.side, Qt.AspectRatioMode.KeepAspectRatio,
                                                              Qt.TransformationMode.SmoothTransformation))
            layout.addWidget(picture)
            if captions:
                caption = QLabel(captions[i])
                caption.setObjectName("Muted")
                caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
                layout.addWidget(caption)
            self.grid.addWidget(cell, i // self.columns, i % self.columns)
            self.labels.append(picture)
