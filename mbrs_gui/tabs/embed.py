"""Embed tab: open or drop photos, type a message, slide the strength and watch PSNR/SSIM and the difference, save.

The network runs once per image and message (:func:`mbrs_gui.documents.embed`,
in a worker); moving the strength slider only rescales the residual
(:class:`mbrs_gui.imaging.Preview`, a few milliseconds on the GUI thread for
any image size), then the full-resolution views and the SSIM follow in the
background (:func:`mbrs_gui.documents.refine`).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QPushButton,
                               QScrollArea, QSlider, QSpinBox, QVBoxLayout, QWidget)

from mbrs_engine.attacks import AttackError, parse_chain
from mbrs_engine.imageio import check_output_path, list_images
from mbrs_engine.payload import PayloadError

from .. import documents as jobs
from ..context import AppContext
from ..documents import ImageDocument, Signature, VerifyInput
from ..errors import show_error, show_exception, show_warning
from ..qimage import array_to_qimage
from ..widgets.banner import Banner
from ..widgets.capacity_meter import CapacityMeter, Utf8LimitValidator
from ..widgets.compare_views import MARKED_PLACEHOLDER, CompareViews
from ..widgets.file_drop import FileDropTarget
from ..widgets.thumbnails import ImageStrip
from .base import Tab

STRENGTH_MIN, STRENGTH_MAX = 0.1, 3.0
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp *.gif);;All files (*)"
SAVE_FILTERS = {"PNG (*.png)": ".png", "JPEG (*.jpg *.jpeg)": ".jpg", "WebP (*.webp)": ".webp",
                "TIFF (*.tif *.tiff)": ".tif"}
AUTO_ATTACKS = ("jpeg:50", "jpeg:75", "jpeg:90", "resize:0.5", "blur:1", "noise:5", "crop:0.8")


class SaveAllDialog(QDialog):
    """Folder, format, quality, name suffix and CSV report for "Save all"."""

    def __init__(self, ctx: AppContext, count: int, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Save all watermarked images")
        self.folder = QLineEdit(ctx.settings.folder("save"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.format = QComboBox()
        self.format.addItems(list(jobs.OUTPUT_FORMATS))
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(int(ctx.settings.get("save_quality")))
        self.suffix = QLineEdit("-wm")
        self.report = QCheckBox("Write a CSV report (mbrs-report.csv) with PSNR and SSIM")
        self.report.setChecked(True)
        form = QFormLayout(self)
        form.addRow(QLabel(f"{count} image(s), each at its own strength."))
        form.addRow("Folder", row)
        form.addRow("Format", self.format)
        form.addRow("JPEG / WebP quality", self.quality)
        form.addRow("Name suffix", self.suffix)
        form.addRow(self.report)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save into folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    @property
    def extension(self) -> str:
        return jobs.OUTPUT_FORMATS[self.format.currentText()]


class EmbedTab(FileDropTarget, QWidget, Tab):
    """See the module docstring."""

    send_to_verify = Signal(object)  # VerifyInput
    open_models = Signal()
    state_changed = Signal()  # what can be saved changed
    saved = Signal(str)  # a file was written
    status = Signal(str)  # a message for the status bar
    show_requested = Signal()  # bring this tab to the front

    def __init__(self, ctx: AppContext, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.docs: dict[int, ImageDocument] = {}
        self.current: ImageDocument | None = None
        self.last_update_ms = 0.0
        self.setAcceptDrops(True)
        self._embed_timer = self._timer(350, self._embed_current)
        self._refine_timer = self._timer(180, self._refine_current)
        self._build()
        ctx.models.changed.connect(self._model_changed)
        ctx.models.loading.connect(self._model_changed)
        self._model_changed()

    @staticmethod
    def _timer(ms: int, slot) -> QTimer:
        timer = QTimer()
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(slot)
        return timer

    # ------------------------------------------------------------ layout

    def _build(self) -> None:
        self.banner = Banner("Open the Models tab")
        self.banner.action.connect(self.open_models)

        images = QGroupBox("Images")
        open_button = QPushButton("Open…")
        open_button.setToolTip("Open one or more images (Ctrl+O); you can also drop them on the window")
        open_button.clicked.connect(self.choose_files)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Close the selected image (Delete)")
        self.remove_button.clicked.connect(self.remove_current)
        self.info = QLabel("No image")
        self.info.setObjectName("Muted")
        self.info.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(open_button)
        row.addWidget(self.remove_button)
        box = QVBoxLayout(images)
        box.addLayout(row)
        box.addWidget(self.info)

        message = QGroupBox("Message")
        self.message = QLineEdit()
        self.message.setPlaceholderText("e.g. © Jane Doe 2025")
        self.validator = Utf8LimitValidator(0, self.message)
        self.validator.refused.connect(lambda: self.meter.show_full(self.capacity))
        self.message.setValidator(self.validator)
        self.message.textChanged.connect(self._message_changed)
        self.meter = CapacityMeter()
        self.key = QLineEdit()
        self.key.setPlaceholderText("optional: only readers with the key can find it")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.textChanged.connect(self._message_changed)
        show_key = QCheckBox("Show")
        show_key.toggled.connect(lambda on: self.key.setEchoMode(QLineEdit.EchoMode.Normal if on
                                                                 else QLineEdit.EchoMode.Password))
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(show_key)
        form = QFormLayout(message)
        form.addRow(self.message)
        form.addRow(self.meter)
        form.addRow("Secret key", key_row)

        strength = QGroupBox("Strength")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(STRENGTH_MIN * 100), round(STRENGTH_MAX * 100))
        self.slider.setPageStep(10)
        self.slider.setToolTip("Higher: more robust, more visible. Moving it never reruns the network.")
        self.spin = QDoubleSpinBox()
        self.spin.setRange(STRENGTH_MIN, STRENGTH_MAX)
        self.spin.setSingleStep(0.05)
        self.spin.setDecimals(2)
        initial = float(self.ctx.settings.get("strength"))
        self.slider.setValue(round(min(STRENGTH_MAX, max(STRENGTH_MIN, initial)) * 100))
        self.spin.setValue(self.slider.value() / 100)
        self.slider.valueChanged.connect(lambda v: self.spin.setValue(v / 100))
        self.spin.valueChanged.connect(self._strength_changed)
        slider_row = QHBoxLayout()
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(self.spin)
        self.psnr_label = QLabel("–")
        self.psnr_label.setObjectName("Metric")
        self.ssim_label = QLabel("–")
        self.ssim_label.setObjectName("Metric")
        self.visibility_label = QLabel("–")
        self.visibility_label.setObjectName("Metric")
        metrics = QGridLayout()  # two pairs a row: the panel is narrow
        metrics.setHorizontalSpacing(10)
        for i, (name, label) in enumerate((("PSNR", self.psnr_label), ("SSIM", self.ssim_label),
                                           ("Visibility", self.visibility_label))):
            caption = QLabel(name)
            caption.setObjectName("Muted")
            metrics.addWidget(caption, i // 2, 2 * (i % 2))
            metrics.addWidget(label, i // 2, 2 * (i % 2) + 1)
        metrics.setColumnStretch(4, 1)
        self.auto_attack = QComboBox()
        self.auto_attack.setEditable(True)
        self.auto_attack.addItems(AUTO_ATTACKS)
        self.auto_attack.setCurrentText(str(self.ctx.settings.get("auto_attack")))
        self.auto_attack.setToolTip("Attack the watermark must survive: jpeg:Q, crop:F, resize:F, blur:S, noise:S, "
                                    "chained with + (e.g. jpeg:75+resize:0.5)")
        self.auto_button = QPushButton("Auto strength")
        self.auto_button.setToolTip("Find the lowest strength at which the message still reads back, with margin, "
                                    "after the chosen attack")
        self.auto_button.clicked.connect(self.run_auto_strength)
        auto_row = QHBoxLayout()
        auto_row.addWidget(self.auto_attack, 1)
        auto_row.addWidget(self.auto_button)
        self.tiles = QCheckBox("Tiles: readable from a crop anywhere")
        self.tiles.setChecked(bool(self.ctx.settings.get("tiles")))
        self.tiles.setToolTip("Repeat the message in small tiles over the photo: it reads back from a crop anywhere, "
                              "a rotated or mirrored copy, and the pattern is finer (less visible). Off: one message "
                              "map stretched over the whole photo. Photos smaller than two tiles always take that.")
        self.tiles.toggled.connect(self._tiles_toggled)
        self.refine = QCheckBox("Refine against attacks")
        self.refine.setChecked(bool(self.ctx.settings.get("refine")))
        self.refine.setToolTip("Tune the watermark of a photo against JPEG, resizing, cropping and turning, at the "
                               "same PSNR: every photo in the whole-frame layout (tiles off, or a small photo), and "
                               "tiles where crops and turns read them with little margin (dense textures). Much more "
                               "robust, takes seconds per such photo. Off: the network's watermark as is, instantly.")
        self.refine.toggled.connect(self._refine_toggled)
        box = QVBoxLayout(strength)
        box.addLayout(slider_row)
        box.addLayout(metrics)
        box.addWidget(self.tiles)
        box.addWidget(self.refine)
        box.addLayout(auto_row)

        output = QGroupBox("Output")
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(int(self.ctx.settings.get("save_quality")))
        self.quality.setToolTip("Quality of JPEG and WebP files (WebP 100 = lossless); PNG and TIFF are lossless")
        self.quality.valueChanged.connect(lambda q: self.ctx.settings.set("save_quality", q))
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(lambda: self.save(ask=True))
        self.save_all_button = QPushButton("Save all…")
        self.save_all_button.clicked.connect(self.save_all)
        self.embed_button = QPushButton("Embed")
        self.embed_button.setToolTip("Watermark the image with the message (again, after a cancel or an error)")
        self.embed_button.clicked.connect(self.embed_again)
        self.embed_button.hide()
        self.verify_button = QPushButton("Verify ▸")
        self.verify_button.setToolTip("Attack this watermarked image and decode it in the Verify tab")
        self.verify_button.clicked.connect(self._send_to_verify)
        form = QFormLayout(output)
        form.addRow("JPEG / WebP quality", self.quality)
        buttons = QHBoxLayout()
        buttons.addWidget(self.embed_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.save_all_button)
        buttons.addWidget(self.verify_button)
        form.addRow(buttons)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 6, 0)
        for group in (images, message, strength, output):
            side_layout.addWidget(group)
        side_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFixedWidth(360)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        self.strip = ImageStrip()
        self.strip.currentItemChanged.connect(self._strip_selected)
        self.strip.hide()
        self.views = CompareViews()
        self.views.set_mode(self.ctx.settings.get("view_mode") if self.ctx.settings.get("view_mode")
                            in CompareViews.MODES else "side")
        self.views.third_changed.connect(lambda _: self._show_marked())
        right = QVBoxLayout()
        right.addWidget(self.strip)
        right.addWidget(self.views, 1)

        body = QHBoxLayout()
        body.addWidget(scroll)
        body.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(body, 1)

    # ------------------------------------------------------------ model

    def _model_changed(self) -> None:
        models = self.ctx.models
        wm = models.wm
        capacity, problem = 0, None
        if models.is_loading:
            problem = None
        elif wm is None:
            problem = models.problem
        else:
            try:
                capacity = wm.capacity
            except PayloadError:
                problem = (f"The model '{wm.name}' carries only {wm.message_length} raw bits, too few for a text "
                           f"message with error correction. Choose another default model in the Models tab.")
        self.banner.show_message(problem)
        self.validator.capacity = capacity
        if capacity and len(self.message.text().encode("utf-8")) > capacity:
            self.message.setText(self.message.text().encode("utf-8")[:capacity].decode("utf-8", "ignore"))
        self.message.setEnabled(bool(capacity))
        self.key.setEnabled(bool(capacity))
        self.meter.set_usage(self.message.text(), capacity)
        self._update_enabled()
        self._embed_current()

    @property
    def capacity(self) -> int:
        return self.validator.capacity

    def signature(self) -> Signature | None:
        wm, text = self.ctx.models.wm, self.message.text()
        if wm is None or not self.capacity or not text:
            return None
        return Signature(text, self.key.text() or None, id(wm), self.refine.isChecked(), self.tiles.isChecked())

    def _refine_toggled(self, on: bool) -> None:
        self.ctx.settings.set("refine", on)
        self._embed_current()

    def _tiles_toggled(self, on: bool) -> None:
        self.ctx.settings.set("tiles", on)
        self._embed_current()

    # ------------------------------------------------------------ opening

    def open_dropped(self, paths: list[Path]) -> None:
        self.open_files(paths)

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open images to watermark", self.ctx.settings.folder("open"),
                                                IMAGE_FILTER)
        if files:
            self.open_files([Path(f) for f in files])

    def open_files(self, paths: list[Path]) -> None:
        """Open images in the background (a folder: the images directly in it, a batch for Save all);
        unreadable files end in one dialog listing them."""
        paths = [f for p in map(Path, paths) for f in (list_images(p) if p.is_dir() else [p])]
        if paths:
            self.ctx.settings.remember_folder("open", paths[0])
        self.ctx.tasks.run("Open images", lambda c: jobs.load_documents(c, paths), on_result=self._opened,
                           parent_widget=self)

    def _opened(self, result) -> None:
        docs, failures = result
        for doc in docs:
            doc.strength = self.spin.value()
            self.docs[doc.key] = doc
            self.strip.add(doc.key, doc.name, doc.thumb, str(doc.path))
            self.ctx.settings.add_recent(doc.path)
        self.strip.setVisible(len(self.docs) > 1)
        if docs:
            self.strip.setCurrentItem(self.strip.find(docs[0].key))
            self.select(docs[0].key)
        noted = [doc for doc in docs if doc.notes]
        if noted:
            more = f" (and {len(noted) - 1} more image(s))" if len(noted) > 1 else ""
            self.status.emit(f"{noted[0].name}: {noted[0].notes[0]}{more}")
        if failures:
            summary = (f"{failures[0][1]}" if len(failures) == 1
                       else f"{len(failures)} files could not be opened as images.")
            show_error(self, summary, "\n".join(f"{p}: {reason}" for p, reason in failures))
        self.state_changed.emit()

    def _strip_selected(self, item, _previous=None) -> None:
        if item is not None:
            self.select(item.data(Qt.ItemDataRole.UserRole))

    def select(self, key: int) -> None:
        doc = self.docs.get(key)
        if doc is None or doc is self.current:
            return
        self.current = doc
        self.spin.blockSignals(True)
        self.spin.setValue(doc.strength)
        self.slider.setValue(round(doc.strength * 100))
        self.spin.blockSignals(False)
        width, height = doc.size
        self.info.setText(f"{doc.name}\n{width} × {height} px · {doc.loaded.format or 'image'}"
                          f"{' · transparency kept' if doc.alpha is not None else ''}")
        self.views.set_original(doc.original_preview, doc.size, doc.original_full)
        self.views.sync.fit_all()
        self._show_marked()
        self._embed_current()
        self._update_enabled()

    def remove_current(self) -> None:
        doc = self.current
        if doc is None:
            return
        if doc.unsaved and not self._confirm_discard([doc]):
            return
        del self.docs[doc.key]
        self.strip.takeItem(self.strip.row(self.strip.find(doc.key)))
        self.current = None
        self.strip.setVisible(len(self.docs) > 1)
        if self.docs:
            key = next(iter(self.docs))
            self.strip.setCurrentItem(self.strip.find(key))
            self.select(key)
        else:
            self.views.clear()
            self.info.setText("No image")
            self._show_metrics()
        self._update_enabled()
        self.state_changed.emit()

    # ------------------------------------------------------------ message and embedding

    def _message_changed(self) -> None:
        self.meter.set_usage(self.message.text(), self.capacity)
        self._embed_timer.start()
        self._show_marked()

    def embed_again(self) -> None:
        """Run the embedding of the current image now (after a cancel or a failure)."""
        if self.current is not None:
            self.current.signature = None
        self._embed_current()

    def _embed_current(self) -> None:
        self._embed_timer.stop()
        doc, signature, wm = self.current, self.signature(), self.ctx.models.wm
        if doc is None or signature is None or doc.signature == signature:
            self._update_enabled()
            return
        self.embed_button.hide()
        self.views.marked.placeholder = MARKED_PLACEHOLDER
        self.ctx.tasks.run("Embed", lambda c: jobs.embed(c, wm, doc, signature), on_result=self._embedded,
                           on_error=lambda exc, tb: self._embed_failed(doc, exc, tb),
                           on_cancel=self._embed_cancelled, key="embed", parent_widget=self)

    def _embed_cancelled(self) -> None:
        """Say so, and offer to run it again (the message is still typed)."""
        if self._current_ready():
            return  # a newer embedding replaced this one
        self.views.marked.placeholder = "Embedding cancelled: press Embed to watermark the image"
        self.views.marked.update()
        self.embed_button.show()
        self.status.emit("Embedding cancelled")

    def _embed_failed(self, doc: ImageDocument, exc: BaseException, details: str) -> None:
        if not isinstance(exc, jobs.AlreadyMarked):
            self.embed_button.show()
            show_exception(self, exc, "Embed failed.")
            return
        answer = QMessageBox.question(self, "Already watermarked", f"{doc.name} already carries a watermark: "
                                      f"\u201c{exc.message}\u201d.\n\nEmbedding another one over it can destroy "
                                      f"both. Embed anyway?")
        if answer == QMessageBox.StandardButton.Yes:
            doc.remark_allowed = True
            self._embed_current()
        else:
            self.status.emit(f"Not embedded: {doc.name} already carries a watermark")

    def _embedded(self, result: jobs.EmbedResult) -> None:
        doc = self.docs.get(result.doc_key)
        if doc is None:
            return
        doc.residual, doc.preview, doc.signature = result.residual, result.preview, result.signature
        if doc is self.current:
            self._show_marked()
        self._update_enabled()
        self.state_changed.emit()

    # ------------------------------------------------------------ strength

    @property
    def strength(self) -> float:
        return self.spin.value()

    def _strength_changed(self, value: float) -> None:
        if self.slider.value() != round(value * 100):
            self.slider.blockSignals(True)
            self.slider.setValue(round(value * 100))
            self.slider.blockSignals(False)
        self.ctx.settings.set("strength", value)
        if self.current is not None:
            self.current.strength = value
        self._show_marked()
        self.state_changed.emit()

    def _current_ready(self) -> bool:
        doc = self.current
        return doc is not None and doc.residual is not None and doc.signature == self.signature()

    def _show_marked(self) -> None:
        """The instant update: preview-size render, estimated PSNR; full resolution, exact PSNR and SSIM follow."""
        start = time.perf_counter()
        if not self._current_ready():
            self.views.set_marked(None)
            self.views.set_difference(None)
            self._show_metrics()
            return
        doc = self.current
        marked, difference = doc.preview.render(doc.strength)
        self.views.set_marked(array_to_qimage(marked), doc.size)
        self.views.set_difference(array_to_qimage(difference), doc.size)
        if self.views.third == "visibility":  # only when it is shown: it costs more than the slider may
            heat = doc.preview.heat(doc.strength)
            self.views.set_visibility(None if heat is None else array_to_qimage(heat), doc.size)
        self._show_metrics(doc.residual.psnr_estimate(doc.strength), estimated=True,
                           visibility=doc.residual.visibility_estimate(doc.strength))
        self.last_update_ms = (time.perf_counter() - start) * 1000
        self._refine_timer.start()

    def _show_metrics(self, psnr: float | None = None, ssim: float | None = None, sampled: bool = False,
                      estimated: bool = False, visibility: float | None = None) -> None:
        self.psnr_label.setText("–" if psnr is None else "∞" if math.isinf(psnr)
                                else f"{'≈' if estimated else ''}{psnr:.2f} dB")
        self.psnr_label.setToolTip("Estimated while the full-resolution image is rendered" if estimated else
                                   "PSNR of the 8-bit image that Save writes (exact, full resolution)")
        if ssim is None:
            self.ssim_label.setText("–" if psnr is None else "…")
        else:
            self.ssim_label.setText("n/a" if math.isnan(ssim) else f"{'≈' if sampled else ''}{ssim:.4f}")
            self.ssim_label.setToolTip("Estimated at full resolution on a grid of 256×256 tiles (large image)"
                                       if sampled else "SSIM of the saved 8-bit image (exact)")
        if visibility is None:
            self.visibility_label.setText("–" if psnr is None else "…")
        else:
            self.visibility_label.setText(f"{'≈' if estimated else ''}{visibility:.1f}")
        self.visibility_label.setToolTip(
            "How visible the mark is (the engine's estimate on butteraugli's scale): about 1 is just noticeable, "
            "a JPEG-90 re-save of a photo scores about 1–2.5; the Visibility view shows where"
            + (" (scaled from the last full-resolution figure while it is worked out)" if estimated else ""))

    def _refine_current(self) -> None:
        if not self._current_ready():
            return
        doc = self.current
        state, strength, residual = doc.state(), doc.strength, doc.residual
        need_original = doc.original_full is None
        self.ctx.tasks.run("Full-resolution preview",
                           lambda c: jobs.refine(c, doc, residual, state, strength, need_original),
                           on_result=self._refined, key="refine", quiet=True, parent_widget=self)

    def _refined(self, r: jobs.Refinement) -> None:
        doc = self.docs.get(r.doc_key)
        if doc is None:
            return
        if r.original is not None:
            doc.original_full = r.original
        if doc is not self.current or doc.state() != r.state:
            return
        if r.original is not None:
            self.views.set_original_full(r.original)
        self.views.set_marked_full(r.marked)
        self.views.set_difference_full(r.difference)
        self.views.set_visibility_full(r.heat)
        doc.residual.last_visibility = (r.state[1], r.visibility)
        self._show_metrics(r.psnr, r.ssim, r.ssim_sampled, visibility=r.visibility)

    # ------------------------------------------------------------ auto strength

    def run_auto_strength(self) -> None:
        doc, signature, wm = self.current, self.signature(), self.ctx.models.wm
        if not self._current_ready():
            show_error(self, "Open an image and type a message first: auto strength tests the watermark itself.")
            return
        chain = self.auto_attack.currentText().strip()
        try:
            parse_chain(chain)
        except AttackError as exc:
            show_error(self, f"Cannot read the attack '{chain}': {exc}")
            return
        self.ctx.settings.set("auto_attack", chain)
        residual = doc.residual
        self.ctx.tasks.run("Auto strength", lambda c: jobs.auto_strength(c, wm, doc, residual, signature, chain),
                           on_result=self._auto_done, parent_widget=self)

    def _auto_done(self, result: jobs.AutoStrength) -> None:
        if result.strength is None:
            show_error(self, f"At no strength up to {STRENGTH_MAX:g} does the message read back with margin after "
                             f"'{result.chain}' (at best {result.errors_at_best} bit errors; at most {result.margin} "
                             f"leave margin). Try a milder attack or a more robust model.")
            return
        if self.current is not None and self.current.key == result.doc_key:
            self.spin.setValue(result.strength)
            self.status.emit(f"Auto strength: {result.strength:.2f} is the lowest at which the message reads "
                             f"back after {result.chain} (with margin)")

    # ------------------------------------------------------------ saving

    title = "Embed"

    def can_open(self) -> bool:
        return True

    def view_sync(self):
        return self.views.sync

    def set_view_mode(self, mode: str) -> None:
        """Side by side (``side``) or split (``split``)."""
        self.views.set_mode(mode)

    def has_documents(self) -> bool:
        return bool(self.docs)

    def unsaved_count(self) -> int:
        return len(self.unsaved_documents())

    def apply_preferences(self, values: dict) -> None:
        self.quality.setValue(values["save_quality"])

    def remember(self, settings) -> None:
        settings.set("view_mode", self.views.mode)

    def confirm_close(self, parent) -> bool:
        """Unsaved watermarked images: Save (all, in the background: the user quits again once done), Discard
        or Cancel."""
        unsaved = self.unsaved_documents()
        if not unsaved:
            return True
        names = ", ".join(d.name for d in unsaved[:3]) + (" …" if len(unsaved) > 3 else "")
        answer = QMessageBox.question(
            parent, "Unsaved watermarked images",
            f"{len(unsaved)} watermarked image(s) are not saved ({names}).\n\nSave them before quitting?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            self.show_requested.emit()
            self.save_all()
        return answer == QMessageBox.StandardButton.Discard

    def can_save(self) -> bool:
        return self._current_ready()

    def unsaved_documents(self) -> list[ImageDocument]:
        return [d for d in self.docs.values() if d.unsaved]

    def _suggested_path(self, doc: ImageDocument) -> Path:
        if doc.saved_path is not None:
            return doc.saved_path
        extension = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tif": ".tif"}.get(
            str(self.ctx.settings.get("save_format")), ".png")
        return Path(self.ctx.settings.folder("save", fallback=doc.path.parent)) / f"{doc.path.stem}-wm{extension}"

    def save(self, ask: bool = False) -> None:
        """Save the current watermarked image (Save As when ``ask`` or never saved)."""
        doc = self.current
        if not self.can_save():
            show_error(self, "Nothing to save yet: open an image and type a message to watermark it.")
            return
        path = doc.saved_path
        if ask or path is None:
            suggested = self._suggested_path(doc)
            filters = ";;".join(SAVE_FILTERS)
            chosen = next((f for f, ext in SAVE_FILTERS.items() if ext == suggested.suffix), None)
            name, selected = QFileDialog.getSaveFileName(self, "Save watermarked image", str(suggested), filters,
                                                         chosen)
            if not name:
                return
            path = Path(name)
            if not path.suffix:
                path = path.with_suffix(SAVE_FILTERS.get(selected, ".png"))
        self.save_to(path)

    def save_to(self, path: Path) -> None:
        doc, quality, strength = self.current, self.quality.value(), self.current.strength
        state = doc.state()
        try:
            check_output_path(path, doc.path, replace=True)  # the file dialog asked before replacing a file
        except ValueError as exc:
            show_error(self, str(exc))
            return
        wm = self.ctx.models.wm
        self.ctx.tasks.run("Save", lambda c: jobs.save_document(c, wm, doc, path, quality, strength),
                           on_result=lambda saved: self._saved(doc, saved, state), parent_widget=self)

    def _saved(self, doc: ImageDocument, saved: jobs.Saved, state: tuple) -> None:
        path = saved.path
        doc.saved_path, doc.saved_state, doc.reads_back = path, state, saved.reads_back
        if not saved.reads_back:
            show_warning(self, f"Saved {path.name}, but the message does not read back from the saved file.",
                         "Raise the strength, save as PNG (or at a higher quality), or use a larger image.")
        self.ctx.settings.remember_folder("save", path)
        self.ctx.settings.set("save_format", path.suffix.lower().lstrip(".").replace("jpeg", "jpg"))
        self.ctx.settings.add_recent(path)
        outcome = "the message reads back" if saved.reads_back else "the message does NOT read back"
        self.saved.emit(f"{path} ({outcome})")
        self.state_changed.emit()

    def save_all(self) -> None:
        signature, wm = self.signature(), self.ctx.models.wm
        if not self.docs or signature is None:
            show_error(self, "Open images and type a message first.")
            return
        dialog = SaveAllDialog(self.ctx, len(self.docs), self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        folder = Path(dialog.folder.text()).expanduser()
        if not folder.is_dir():
            show_error(self, f"The folder '{folder}' does not exist.")
            return
        docs = list(self.docs.values())
        targets = [jobs.output_path(folder, d, dialog.extension, dialog.suffix.text()) for d in docs]
        try:
            for doc, target in zip(docs, targets):
                check_output_path(target, doc.path, replace=True)  # existing files: asked just below
        except ValueError as exc:
            show_error(self, str(exc))
            return
        existing = [t for t in targets if t.exists()]
        if existing and QMessageBox.question(
                self, "Replace files?", f"{len(existing)} file(s) already exist in '{folder}', e.g. "
                f"'{existing[0].name}'. Replace them?") != QMessageBox.StandardButton.Yes:
            return
        self.ctx.settings.remember_folder("save", folder)
        quality, extension, suffix, report = (dialog.quality.value(), dialog.extension, dialog.suffix.text(),
                                              dialog.report.isChecked())
        self.ctx.tasks.run("Save all", lambda c: jobs.save_all(c, wm, docs, signature, folder, extension, quality,
                                                               suffix, report),
                           on_result=self._saved_all, parent_widget=self)

    def _saved_all(self, result: jobs.SaveAllResult) -> None:
        for key, path, signature, strength, residual, preview, reads_back in result.saved:
            doc = self.docs.get(key)
            if doc is None:
                continue
            if doc.signature != signature:
                doc.residual, doc.preview, doc.signature = residual, preview, signature
            doc.saved_path, doc.saved_state = path, (signature, round(strength, 4))
            doc.reads_back = reads_back
        unread = [path.name for _, path, *_rest, reads_back in result.saved if not reads_back]
        skipped = [self.docs[key].name for key, _ in result.skipped if key in self.docs]
        if unread or skipped:
            lines = []
            if unread:
                lines.append(f"The message does not read back from {len(unread)} saved file(s): {', '.join(unread)}.")
            if skipped:
                lines.append(f"Not saved, because they already carry a watermark: {', '.join(skipped)} (open each "
                             f"one to embed over it anyway).")
            show_warning(self, f"Saved {len(result.saved)} of {len(result.saved) + len(result.skipped)} image(s).",
                         "\n".join(lines))
        self.saved.emit(str(result.report or (result.saved[-1][1] if result.saved else "")))
        self._show_marked()
        self.state_changed.emit()

    def _confirm_discard(self, docs: list[ImageDocument]) -> bool:
        names = ", ".join(d.name for d in docs[:3]) + (" …" if len(docs) > 3 else "")
        answer = QMessageBox.question(self, "Discard watermarked image?",
                                      f"The watermarked version of {names} is not saved. Discard it?")
        return answer == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------ verify

    def _send_to_verify(self) -> None:
        if not self._current_ready():
            show_error(self, "Nothing to verify yet: open an image and type a message first.")
            return
        doc, signature = self.current, self.signature()
        self.send_to_verify.emit(VerifyInput(doc.marked_image(), f"{doc.path.stem} (watermarked, strength "
                                                                 f"{doc.strength:.2f})",
                                             Image.fromarray(doc.rgb, "RGB"), signature.text, signature.key))

    def _update_enabled(self) -> None:
        ready = self._current_ready()
        self.remove_button.setEnabled(self.current is not None)
        self.save_button.setEnabled(ready)
        self.verify_button.setEnabled(ready)
        self.auto_button.setEnabled(ready)
        self.save_all_button.setEnabled(bool(self.docs) and self.signature() is not None)
