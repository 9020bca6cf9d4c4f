"""The Embed tab's image area: original / watermarked / difference (or visibility) side by side, or a split view,
all in step."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (QButtonGroup, QHBoxLayout, QLabel, QSplitter, QStackedWidget, QToolButton,
                               QVBoxLayout, QWidget)

from .image_view import ImageView, ViewSync
from .split_view import SplitView

DROP_HINT = "Drop photos (or a folder) here\nor press Ctrl+O to open them"
DIFFERENCE = "Difference (|Δ luma|, normalised as in the paper's Fig. 4)"
VISIBILITY = ("Where the mark may show, at 1:1 (the engine's visibility map): yellow is about just noticeable, "
              "red twice that or more; clear is under half")
#: The layouts (label, tooltip), in the order of :attr:`CompareViews.MODES`.
MODE_CHOICES = (("Side by side", "Original, watermarked and difference next to each other"),
                ("Split", "Drag the divider to compare original and watermarked"))
#: What the third view can show: (caption, tooltip).
THIRD_VIEWS = {"difference": ("Difference", DIFFERENCE), "visibility": ("Visibility", VISIBILITY)}


#: What the watermarked view says before there is anything to show.
MARKED_PLACEHOLDER = "Type a message to watermark the image"

class CompareViews(QWidget):
    """``set_original`` / ``set_marked`` / ``set_difference`` / ``set_visibility`` take a preview and optionally
    the full image; ``third_changed`` fires when the third view switches between difference and visibility."""

    MODES = ("side", "split")
    third_changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.original = ImageView("Original", DROP_HINT)
        self.marked = ImageView("Watermarked", MARKED_PLACEHOLDER)
        self.difference = ImageView("Difference", "")
        self.split = SplitView()
        self.split_difference = ImageView("Difference", "")
        self.third = "difference"
        # per kind of third view: [preview, full size, full image], kept so that switching shows the latest
        self._third_images = {kind: [None, None, None] for kind in THIRD_VIEWS}
        for view in (self.difference, self.split_difference):
            view.setToolTip(DIFFERENCE)
        self.sync = ViewSync([self.original, self.marked, self.difference, self.split, self.split_difference])

        side = QSplitter(Qt.Orientation.Horizontal)
        for view in (self.original, self.marked, self.difference):
            side.addWidget(view)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.split)
        split.addWidget(self.split_difference)
        split.setSizes([700, 300])
        self.stack = QStackedWidget()
        self.stack.addWidget(side)
        self.stack.addWidget(split)

        bar = QHBoxLayout()
        self.mode_buttons = self._choice(bar, MODE_CHOICES)
        self.mode_buttons.idClicked.connect(lambda i: self.set_mode(self.MODES[i]))
        bar.addSpacing(16)
        self.third_buttons = self._choice(bar, THIRD_VIEWS.values())
        self.third_buttons.idClicked.connect(lambda i: self.show_third(list(THIRD_VIEWS)[i]))
        bar.addStretch(1)
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("Muted")
        bar.addWidget(self.zoom_label)
        for text, tip, slot in (("−", "Zoom out (Ctrl+-)", lambda: self.sync.zoom_all(1 / 1.25)),
                                ("+", "Zoom in (Ctrl++)", lambda: self.sync.zoom_all(1.25)),
                                ("1:1", "Actual pixels (Ctrl+Alt+0)", self.sync.actual_size),
                                ("Fit", "Fit to window (Ctrl+0)", self.sync.fit_all)):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            bar.addWidget(button)
        for view in self.sync.views:
            view.zoom_changed.connect(lambda zoom, v=view: self._show_zoom(v, zoom))

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)

    def _choice(self, bar: QHBoxLayout, items) -> QButtonGroup:
        """Exclusive tool buttons, one per (label, tooltip), added to ``bar``; the first checked."""
        group = QButtonGroup(self)
        for i, (label, tip) in enumerate(items):
            button = QToolButton()
            button.setText(label)
            button.setToolTip(tip)
            button.setCheckable(True)
            group.addButton(button, i)
            bar.addWidget(button)
        group.button(0).setChecked(True)
        return group

    @property
    def mode(self) -> str:
        return self.MODES[self.stack.currentIndex()]

    def set_mode(self, mode: str) -> None:
        index = self.MODES.index(mode)
        self.stack.setCurrentIndex(index)
        self.mode_buttons.button(index).setChecked(True)
        self.sync.fit_all()
        self.show_zoom()

    def _show_zoom(self, view: ImageView, zoom: float) -> None:
        """The zoom of the views on screen (hidden ones fit themselves to their own size)."""
        if view.isVisible() and view.has_image():
            self.zoom_label.setText(f"{zoom * 100:.0f} %")

    def show_zoom(self) -> None:
        view = next((v for v in self.sync.views if v.isVisible() and v.has_image()), None)
        self.zoom_label.setText("" if view is None else f"{view.zoom() * 100:.0f} %")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.show_zoom()

    def set_original(self, preview: QImage | None, full_size=None, full: QImage | None = None) -> None:
        self.original.set_images(preview, full, full_size)
        self.split.set_original(preview, full, full_size)

    def set_original_full(self, full: QImage) -> None:
        self.original.set_full(full)
        self.split.set_original_full(full)

    def set_marked(self, preview: QImage | None, full_size=None) -> None:
        self.marked.set_images(preview, None, full_size)
        self.split.set_images(preview, None, full_size)

    def set_marked_full(self, full: QImage) -> None:
        self.marked.set_full(full)
        self.split.set_full(full)

    def set_difference(self, preview: QImage | None, full_size=None) -> None:
        self._set_third("difference", preview, full_size)

    def set_difference_full(self, full: QImage) -> None:
        self._set_third_full("difference", full)

    def set_visibility(self, preview: QImage | None, full_size=None) -> None:
        self._set_third("visibility", preview, full_size)

    def set_visibility_full(self, full: QImage) -> None:
        self._set_third_full("visibility", full)

    def _set_third(self, kind: str, preview: QImage | None, full_size) -> None:
        self._third_images[kind] = [preview, full_size, None]
        if kind == self.third:
            for view in (self.difference, self.split_difference):
                view.set_images(preview, None, full_size)

    def _set_third_full(self, kind: str, full: QImage) -> None:
        self._third_images[kind][2] = full
        if kind == self.third:
            for view in (self.difference, self.split_difference):
                view.set_full(full)

    def show_third(self, kind: str) -> None:
        """Show the difference or the visibility view as the third image."""
        self.third = kind
        self.third_buttons.button(list(THIRD_VIEWS).index(kind)).setChecked(True)
        caption, tip = THIRD_VIEWS[kind]
        preview, full_size, full = self._third_images[kind]
        for view in (self.difference, self.split_difference):
            view.caption = caption
            view.setToolTip(tip)
            view.set_images(preview, full, full_size)
        self.third_changed.emit(kind)

    def clear(self) -> None:
        self.set_original(None)
        self.set_marked(None)
        self.set_difference(None)
        self.set_visibility(None)
