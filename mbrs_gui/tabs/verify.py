"""Verify tab (attack-and-verify lab): load an image or take the one just embedded, attack it, decode it.

The attack chain (:mod:`mbrs_gui.attack_chain`) is previewed live; Decode
shows the message, whether the watermark is detected with its p-value, the
raw bit errors when the true message is known, and the bits as a grid
coloured by confidence.  The robustness sweep plots the bit error rate of
this very image against JPEG quality and crop size.  "Verify a folder…" (or
a dropped folder) reads every image of a folder into a table
(:mod:`mbrs_gui.batch_verify`), exported as CSV or as an HTML evidence report.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QScrollArea, QSplitter, QVBoxLayout, QWidget)

from mbrs_engine.imageio import list_images, save_image
from mbrs_engine.metrics import bit_errors
from mbrs_engine.payload import PayloadError

from .. import verify_jobs as jobs
from ..attack_chain import ChainError
from ..batch_verify import BatchVerifyDialog
from ..context import AppContext
from ..documents import VerifyInput, open_document
from ..errors import show_error
from ..imaging import PREVIEW_SIDE, fit_size
from ..qimage import pil_to_qimage
from ..widgets.attack_editor import AttackChainEditor
from ..widgets.banner import Banner
from ..widgets.bit_grid import BitGrid
from ..widgets.image_view import ImageView, ViewSync
from ..widgets.plots import LivePlot
from ..widgets.file_drop import FileDropTarget
from .base import Tab
from .embed import IMAGE_FILTER, SAVE_FILTERS

_tokens = itertools.count(1)


SWEEP_PROMPT = "Press “Robustness sweep” to measure this image."

class VerifyTab(FileDropTarget, QWidget, Tab):
    open_models = Signal()
    saved = Signal(str)
    status = Signal(str)
    show_requested = Signal()

    def __init__(self, ctx: AppContext, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.image: Image.Image | None = None
        self.original: Image.Image | None = None
        self.source_path: Path | None = None
        self.image_token = 0
        self.attacked: jobs.Attacked | None = None
        self.decoded: jobs.Decoded | None = None
        self.sweep_result: jobs.Sweep | None = None
        self.batch_dialog: BatchVerifyDialog | None = None
        self.setAcceptDrops(True)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(300)
        self._preview_timer.timeout.connect(self.update_attack_preview)
        self._build()
        ctx.models.changed.connect(self._model_changed)
        self._model_changed()

    # ------------------------------------------------------------ layout

    def _build(self) -> None:
        self.banner = Banner("Open the Models tab")
        self.banner.action.connect(self.open_models)

        source = QGroupBox("Image")
        open_button = QPushButton("Open…")
        open_button.clicked.connect(self.choose_files)
        self.folder_button = QPushButton("Verify a folder…")
        self.folder_button.setToolTip("Read every image of a folder: a table of results, exported as CSV or as an "
                                      "HTML evidence report")
        self.folder_button.clicked.connect(self.choose_folder)
        self.source_label = QLabel("Open or drop an image (or a folder), or press “Verify ▸” in the Embed tab.")
        self.source_label.setWordWrap(True)
        self.source_label.setObjectName("Muted")
        row = QHBoxLayout()
        row.addWidget(open_button)
        row.addWidget(self.folder_button)
        box = QVBoxLayout(source)
        box.addLayout(row)
        box.addWidget(self.source_label)

        known = QGroupBox("What you know (optional)")
        self.expected = QLineEdit()
        self.expected.setPlaceholderText("the embedded message, to count bit errors")
        self.key = QLineEdit()
        self.key.setPlaceholderText("the secret key, if one was used")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        show_key = QCheckBox("Show")
        show_key.toggled.connect(lambda on: self.key.setEchoMode(QLineEdit.EchoMode.Normal if on
                                                                 else QLineEdit.EchoMode.Password))
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(show_key)
        self.every_model = QCheckBox("Try every installed model")
        self.every_model.setToolTip("Read the image with each installed model, the default first; the p-value "
                                    "counts them all, so false alarms stay as rare")
        self.every_model.setChecked(True)
        form = QFormLayout(known)
        form.addRow("Message", self.expected)
        form.addRow("Secret key", key_row)
        form.addRow("", self.every_model)

        attacks = QGroupBox("Attack chain")
        self.editor = AttackChainEditor()
        self.editor.changed.connect(self._chain_changed)
        self.live = QCheckBox("Live preview")
        self.live.setChecked(True)
        self.live.toggled.connect(lambda on: on and self._chain_changed())
        box = QVBoxLayout(attacks)
        box.addWidget(self.editor)
        box.addWidget(self.live)

        self.decode_button = QPushButton("Decode")
        self.decode_button.setDefault(True)
        self.decode_button.setToolTip("Attack the image with the chain and read the watermark (Ctrl+D)")
        self.decode_button.clicked.connect(self.decode)
        self.sweep_button = QPushButton("Robustness sweep")
        self.sweep_button.setToolTip("Bit error rate of this image under JPEG 10–90 and crops of 50–100 %")
        self.sweep_button.clicked.connect(self.run_sweep)
        buttons = QHBoxLayout()
        buttons.addWidget(self.decode_button)
        buttons.addWidget(self.sweep_button)

        results = QGroupBox("Result")
        self.message_label = QLabel("–")
        self.message_label.setObjectName("BigMessage")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detected_label = QLabel("")
        self.model_label = QLabel("")
        self.p_label = QLabel("")
        self.bch_label = QLabel("")
        self.errors_label = QLabel("")
        for label in (self.p_label, self.bch_label, self.errors_label):
            label.setWordWrap(True)
        form = QFormLayout(results)
        form.addRow("Message", self.message_label)
        form.addRow("Watermark", self.detected_label)
        form.addRow("Model", self.model_label)
        form.addRow("p-value", self.p_label)
        form.addRow("Error correction", self.bch_label)
        form.addRow("Bit errors", self.errors_label)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 6, 0)
        for widget in (source, known, attacks):
            side_layout.addWidget(widget)
        side_layout.addLayout(buttons)
        side_layout.addWidget(results)
        side_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFixedWidth(400)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        self.input_view = ImageView("Input", "Drop an image here\nor press Ctrl+O")
        self.attacked_view = ImageView("Attacked", "The attacked image appears here")
        self.sync = ViewSync([self.input_view, self.attacked_view])
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self.input_view)
        views.addWidget(self.attacked_view)

        self.bits = BitGrid()
        self.bits_legend = QLabel("")
        self.bits_legend.setObjectName("Muted")
        self.bits_legend.setWordWrap(True)
        bits_page = QWidget()
        bits_layout = QVBoxLayout(bits_page)
        bits_layout.addWidget(self.bits, 1)
        bits_layout.addWidget(self.bits_legend)
        self.jpeg_plot = LivePlot("BER vs JPEG quality", "JPEG quality", "bit error rate (%)", legend=False)
        self.crop_plot = LivePlot("BER vs crop", "kept area (%)", "bit error rate (%)", legend=False)
        self.sweep_summary = QLabel(SWEEP_PROMPT)
        self.sweep_summary.setObjectName("Muted")
        self.sweep_summary.setWordWrap(True)
        sweep_page = QWidget()
        sweep_layout = QVBoxLayout(sweep_page)
        plots = QHBoxLayout()
        plots.addWidget(self.jpeg_plot)
        plots.addWidget(self.crop_plot)
        sweep_layout.addLayout(plots, 1)
        sweep_layout.addWidget(self.sweep_summary)
        bits_box = QGroupBox("Decoded bits")
        QVBoxLayout(bits_box).addWidget(bits_page)
        sweep_box = QGroupBox("Robustness sweep")
        QVBoxLayout(sweep_box).addWidget(sweep_page)
        self.lower = QSplitter(Qt.Orientation.Horizontal)
        self.lower.addWidget(bits_box)
        self.lower.addWidget(sweep_box)
        self.lower.setSizes([330, 700])

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(views)
        right.addWidget(self.lower)
        right.setSizes([520, 300])

        body = QHBoxLayout()
        body.addWidget(scroll)
        body.addWidget(right, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(body, 1)
        self._show_result()

    # ------------------------------------------------------------ model

    def _model_changed(self) -> None:
        models = self.ctx.models
        self.banner.show_message(None if models.wm is not None or models.is_loading else models.problem)
        self._update_enabled()

    def _update_enabled(self) -> None:
        ready = self.image is not None and self.ctx.models.wm is not None
        self.decode_button.setEnabled(ready)
        self.sweep_button.setEnabled(ready)

    # ------------------------------------------------------------ input

    def open_dropped(self, paths: list[Path]) -> None:
        folder = next((Path(p) for p in paths if Path(p).is_dir()), None)
        if folder is not None:
            self.verify_folder(folder)
        else:
            self.open_files(paths[:1])

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder to verify", self.ctx.settings.folder("open"))
        if folder:
            self.verify_folder(Path(folder))

    def verify_folder(self, folder: Path) -> None:
        """Verify every image directly in ``folder`` in the background, then show the table."""
        wm = self.ctx.models.wm
        if wm is None:
            show_error(self, self.ctx.models.problem or "No model is loaded.")
            return
        paths = list_images(folder)
        if not paths:
            show_error(self, f"There are no image files in {folder}.")
            return
        self.ctx.settings.remember_folder("open", folder)
        key, every = self.key.text() or None, self.every_model.isChecked()
        self.ctx.tasks.run("Verify a folder", lambda c: jobs.verify_folder(c, wm, folder, paths, key, every),
                           on_result=self._folder_verified, parent_widget=self)

    def _folder_verified(self, result: jobs.FolderVerified) -> None:
        self.batch_dialog = BatchVerifyDialog(result.folder, result.verdicts, result.models, result.key_used, self)
        self.batch_dialog.open_file.connect(lambda path: self.open_files([Path(path)]))
        self.batch_dialog.show()
        found = sum(v.detected for v in result.verdicts)
        self.status.emit(f"Verified {len(result.verdicts)} file(s) in {result.folder}: {found} with a watermark")

    title = "Verify"

    def can_open(self) -> bool:
        return True

    def apply_preferences(self, values: dict) -> None:
        for plot in (self.jpeg_plot, self.crop_plot):
            plot.apply_theme()

    def view_sync(self):
        return self.sync

    def choose_files(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Open an image to verify", self.ctx.settings.folder("open"),
                                              IMAGE_FILTER)
        if name:
            self.open_files([Path(name)])

    def open_files(self, paths: list[Path]) -> None:
        path = Path(paths[0])
        self.ctx.settings.remember_folder("open", path)
        self.ctx.tasks.run("Open image", lambda c: open_document(path),
                           on_result=lambda doc: self._opened(doc), parent_widget=self)

    def _opened(self, doc) -> None:
        self.ctx.settings.add_recent(doc.path)
        self.set_input(VerifyInput(doc.loaded.image, doc.name), doc.path)

    def set_input(self, data: VerifyInput, path: Path | None = None) -> None:
        """Show a new image to verify; what is known about it fills the optional fields."""
        self.image, self.original, self.source_path = data.image, data.original, path
        self.image_token = next(_tokens)
        self.attacked = self.decoded = None
        if data.message is not None:
            self.expected.setText(data.message)
        elif path is not None:
            self.expected.clear()
        if data.key is not None or path is not None:
            self.key.setText(data.key or "")
        width, height = data.image.size
        origin = "from the Embed tab" if data.original is not None else str(path or "")
        self.source_label.setText(f"{data.name}\n{width} × {height} px {origin}".strip())
        small = data.image.resize(fit_size(width, height, PREVIEW_SIDE), Image.Resampling.BOX) \
            if max(data.image.size) > PREVIEW_SIDE else data.image
        self.input_view.set_images(pil_to_qimage(small), pil_to_qimage(data.image), data.image.size)
        self.attacked_view.clear()
        self._clear_sweep()
        self._show_result()
        self._update_enabled()
        self._chain_changed()

    # ------------------------------------------------------------ attack

    def _chain_token(self) -> tuple:
        chain = self.editor.chain()
        return self.image_token, tuple((s.kind, s.values) for s in chain.steps)

    def _chain_changed(self) -> None:
        if self.image is not None and self.live.isChecked():
            self._preview_timer.start()

    def update_attack_preview(self) -> None:
        if self.image is None:
            return
        token, image, original, chain = self._chain_token(), self.image, self.original, self.editor.chain()
        self.ctx.tasks.run("Attack preview", lambda c: jobs.attack(c, token, image, original, chain),
                           on_result=self._attacked, on_error=self._attack_failed, key="attack", parent_widget=self)

    def _attack_failed(self, exc: BaseException, details: str) -> None:
        if isinstance(exc, ChainError):
            self.attacked_view.clear()
            self.status.emit(str(exc))
            self.attacked_view.placeholder = str(exc)
            self.attacked_view.viewport().update()
        else:
            show_error(self, f"The attack failed: {exc}", details)

    def _attacked(self, attacked: jobs.Attacked) -> None:
        if attacked.token != self._chain_token():
            return
        if self.attacked is None or self.attacked.token != attacked.token:
            self.attacked_view.set_outlines([])  # a new attacked image: the last reading's tiles are not on it
        self.attacked = attacked
        self.attacked_view.placeholder = "The attacked image appears here"
        self.attacked_view.set_images(attacked.preview, attacked.full, attacked.image.size)

    # ------------------------------------------------------------ decode

    def decode(self) -> None:
        wm = self.ctx.models.wm
        if self.image is None or wm is None:
            show_error(self, "Open an image first." if wm is not None else (self.ctx.models.problem or "No model."))
            return
        message, key = self.expected.text() or None, self.key.text() or None
        try:
            jobs.expected_bits(wm, message, key)
        except PayloadError as exc:
            show_error(self, f"The expected message cannot be checked: {exc}")
            return
        token, image, original, chain = self._chain_token(), self.image, self.original, self.editor.chain()
        ready = self.attacked if self.attacked is not None and self.attacked.token == token else None
        every_model = self.every_model.isChecked()

        def work(ctx):
            attacked = ready or jobs.attack(ctx, token, image, original, chain)
            return jobs.decode(ctx, wm, attacked, message, key, every_model)

        self.ctx.tasks.run("Decode", work, on_result=self._decoded, parent_widget=self)

    def _decoded(self, decoded: jobs.Decoded) -> None:
        self.decoded = decoded
        if decoded.attacked.token == self._chain_token():
            self._attacked(decoded.attacked)
            # where the decoder read it: the tiles of the lattice found (or the whole image)
            self.attacked_view.set_outlines(decoded.result.outlines if decoded.result.detected else [])
        self._show_result()

    def _show_result(self) -> None:
        decoded = self.decoded
        if decoded is None:
            self.message_label.setText("–")
            for label in (self.detected_label, self.model_label, self.p_label, self.bch_label, self.errors_label):
                label.setText("")
            self.bits.set_bits(None)
            self.bits_legend.setText("")
            return
        r = decoded.result
        self.message_label.setText(r.message if r.detected else "(no message found)")
        self.detected_label.setText("Detected ✓" if r.detected else "Not detected ✗")
        self.detected_label.setObjectName("Good" if r.detected else "Bad")
        self.detected_label.style().unpolish(self.detected_label)
        self.detected_label.style().polish(self.detected_label)
        tried = decoded.models
        self.model_label.setText((r.model or "") + (f" (tried {len(tried)} models: {', '.join(tried)})"
                                                     if len(tried) > 1 else ""))
        self.p_label.setText(f"{r.p_value:.3g} (chance that an unmarked image passes; threshold {r.threshold:g})"
                             + (f"; found as {r.frame} (outlined on the attacked image)" if r.frame != "full"
                                else ""))
        self.bch_label.setText(r.describe_correction())
        reference = decoded.expected
        if reference is not None:
            errors = bit_errors(r.soft, reference)
            self.errors_label.setText(f"{errors} of {len(reference)} raw bits wrong ({100 * errors / len(reference):.2f} %)"
                                      + (", message matches" if r.message == self.expected.text() else ""))
            legend = "green: right, red: wrong (vs the expected message)"
        elif r.detected:
            reference = np.asarray(r.corrected_bits, dtype=np.uint8)
            errors = bit_errors(r.soft, reference)
            outside = f" ({r.erased_bits} bits outside the crop were not read)" if r.erased_bits else ""
            self.errors_label.setText(f"{errors} raw bit(s) differ from the corrected message{outside}")
            legend = "green: right, red: wrong (vs the corrected bits)"
        else:
            self.errors_label.setText("unknown (type the expected message to count them)")
            legend = "blue: 1, orange: 0"
        self.bits.set_bits(r.soft, reference)
        self.bits_legend.setText(f"{len(r.soft)} bits; {legend}; faded = low confidence. Hover a cell for details.")

    # ------------------------------------------------------------ sweep

    def _clear_sweep(self) -> None:
        """Forget the sweep of the previous image (its curves and summary are not this image's)."""
        self.sweep_result = None
        self.jpeg_plot.reset()
        self.crop_plot.reset()
        self.sweep_summary.setText(SWEEP_PROMPT)

    def run_sweep(self) -> None:
        wm = self.ctx.models.wm
        if self.image is None or wm is None:
            show_error(self, "Open an image first." if wm is not None else (self.ctx.models.problem or "No model."))
            return
        image, message, key = self.image, self.expected.text() or None, self.key.text() or None
        token = self.image_token
        self.sweep_summary.setText("Sweeping…")
        self.ctx.tasks.run("Robustness sweep", lambda c: jobs.sweep(c, wm, image, message, key),
                           on_result=lambda result: self._swept(result) if token == self.image_token else None, on_cancel=lambda: self.sweep_summary.setText("Sweep cancelled."),
                           on_error=self._sweep_failed, parent_widget=self)

    def _sweep_failed(self, exc: BaseException, details: str) -> None:
        self.sweep_summary.setText("Sweep failed.")
        show_error(self, str(exc), details)

    def _swept(self, result: jobs.Sweep) -> None:
        self.sweep_result = result
        self.jpeg_plot.set_curve("BER", result.qualities, [100 * b for b in result.jpeg_ber])
        self.crop_plot.set_curve("BER", [100 * f for f in result.fractions], [100 * b for b in result.crop_ber])
        self.sweep_summary.setText(result.summary())

    # ------------------------------------------------------------ saving

    def can_save(self) -> bool:
        return self.attacked is not None

    def save(self, ask: bool = True) -> None:
        if self.attacked is None:
            show_error(self, "Nothing to save: the attacked image appears once an image is loaded.")
            return
        base = Path(self.ctx.settings.folder("save")) / "attacked.png"
        name, selected = QFileDialog.getSaveFileName(self, "Save the attacked image", str(base),
                                                     ";;".join(SAVE_FILTERS))
        if not name:
            return
        path = Path(name) if Path(name).suffix else Path(name).with_suffix(SAVE_FILTERS.get(selected, ".png"))
        image, source = self.attacked.image, self.source_path
        self.ctx.tasks.run("Save", lambda c: save_image(image, path, quality=100, source=source, replace=True),
                           on_result=lambda p: self.saved.emit(str(p)), parent_widget=self)
