"""Models tab: the shipped and user models with H, L, capacity and measured PSNR / BER; default, import, measure.

Listing, importing and choosing the default go through
:mod:`mbrs_engine.model_files`; "Measure on my photos…" runs
:func:`mbrs_engine.evaluate.evaluate` (full-size protocol, no attack and
JPEG 50) on a folder of the user's photos, and keeps the numbers for the
session beside the model's own.
"""
from __future__ import annotations

import html

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QInputDialog, QLabel,
                               QMessageBox, QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QTextBrowser,
                               QVBoxLayout, QWidget)

from mbrs_engine import Watermarker
from mbrs_engine.evaluate import EvalConfig, evaluate, load_folder
from mbrs_engine.model_files import (ModelFileError, ModelInfo, check_name, format_metrics_lines, headline_metrics,
                                     install_model, list_models, read_model_json, remove_model, set_default_model,
                                     shipped_models_dir, unfit_as_default, user_models_dir)

from ..context import AppContext
from ..errors import show_error
from .base import Tab

COLUMNS = ("Default", "Name", "Source", "H", "L", "Capacity", "PSNR", "BER JPEG-50", "Description")
MEASURE_ATTACKS = ("identity", "jpeg:50")
MEASURE_LIMIT = 20


def measure(ctx, json_path: Path, folder: Path, device: str) -> dict:
    """PSNR and BER under JPEG 50 of a model at strength 1 on up to MEASURE_LIMIT photos of a folder."""
    ctx.progress(0, 0, "Loading the model and photos")
    wm = Watermarker.from_pretrained(json_path, device=device)
    images = load_folder(folder, MEASURE_LIMIT)
    rows = evaluate(wm, images, EvalConfig(attacks=MEASURE_ATTACKS, protocol="full"),
                    progress=lambda done, total, name: ctx.progress(done, total, f"Measuring on {name}"))
    jpeg = next(r for r in rows if r.attack == "jpeg:50")
    return {"psnr": jpeg.psnr, "ber": jpeg.ber, "images": jpeg.images, "folder": str(folder)}


def _metrics_text(metrics: dict | None) -> str:
    """The metrics as HTML lines, or nothing (the row is then left out) when none were recorded."""
    return "<br>".join(html.escape(line) for line in format_metrics_lines(metrics)) if metrics else ""


class ModelsTab(QWidget, Tab):
    status = Signal(str)
    show_requested = Signal()
    title = "Models"

    def __init__(self, ctx: AppContext, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.infos: list[ModelInfo] = []
        self.measured: dict[str, dict] = {}
        self._build()
        ctx.models_changed.connect(self.refresh)
        ctx.models.changed.connect(self.refresh)
        self.refresh()

    def _build(self) -> None:
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._show_details)
        self.table.itemDoubleClicked.connect(lambda _item: self.set_default())

        self.empty = QLabel("No models are installed yet: the trained default model comes with a later release. "
                            "Import a model pair (.safetensors + .json) or train one in the Train tab.")
        self.empty.setObjectName("Banner")
        self.empty.setWordWrap(True)

        self.default_button = QPushButton("Set as default")
        self.default_button.setToolTip("Use this model in the Embed and Verify tabs (and for `mbrs` commands)")
        self.default_button.clicked.connect(self.set_default)
        self.remove_button = QPushButton("Remove…")
        self.remove_button.setToolTip("Delete this model from your models folder (shipped models stay)")
        self.remove_button.clicked.connect(self.remove)
        import_button = QPushButton("Import model…")
        import_button.setToolTip("Copy a .safetensors + .json model pair into your models folder")
        import_button.clicked.connect(self.choose_import)
        self.measure_button = QPushButton("Measure on my photos…")
        self.measure_button.setToolTip(f"PSNR and BER under JPEG 50 at strength 1 on up to {MEASURE_LIMIT} photos")
        self.measure_button.clicked.connect(self.choose_measure)
        folder_button = QPushButton("Show models folder")
        folder_button.clicked.connect(self.show_folder)
        refresh_button = QPushButton("Refresh")
        refresh_button.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        for button in (self.default_button, import_button, self.remove_button, self.measure_button, folder_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(refresh_button)

        self.where = QLabel()
        self.where.setObjectName("Muted")
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QTextBrowser()
        self.details.setOpenExternalLinks(False)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.empty)
        top_layout.addWidget(self.table, 1)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.where)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.details)
        splitter.setSizes([420, 200])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

    # ------------------------------------------------------------ listing

    def refresh(self) -> None:
        selected = self.selected()
        try:
            self.infos = list_models()
        except ModelFileError as exc:
            self.infos = []
            show_error(self, str(exc))
        self.table.setRowCount(len(self.infos))
        for row, info in enumerate(self.infos):
            metrics = dict(info.metrics)
            if info.name in self.measured:
                metrics = {**metrics, "measured": self.measured[info.name]}
            psnr, ber = headline_metrics(metrics)
            cells = ("★" if info.is_default else "", info.name, info.source,
                     "–" if info.image_size is None else str(info.image_size),
                     "–" if info.message_length is None else str(info.message_length),
                     "raw bits" if info.capacity is None and info.error is None else
                     "–" if info.capacity is None else f"{info.capacity} chars",
                     "–" if psnr is None else f"{psnr:.1f} dB",
                     "–" if ber is None else f"{100 * ber:.2f} %",
                     f"unreadable: {info.error}" if info.error else info.description)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col in (0, 3, 4, 5, 6, 7):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if info.is_default:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, col, item)
        self.empty.setVisible(not self.infos)
        self.where.setText(f"Your models: {user_models_dir()}    ·    Shipped models: {shipped_models_dir()}")
        names = [i.name for i in self.infos]
        if selected is not None and selected.name in names:
            self.table.selectRow(names.index(selected.name))
        elif self.infos:
            self.table.selectRow(next((i for i, info in enumerate(self.infos) if info.is_default), 0))
        self._show_details()

    def selected(self) -> ModelInfo | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.infos[rows[0].row()] if rows and rows[0].row() < len(self.infos) else None

    def _show_details(self) -> None:
        info = self.selected()
        self.default_button.setEnabled(info is not None and info.error is None and not info.is_default)
        self.measure_button.setEnabled(info is not None and info.error is None)
        self.remove_button.setEnabled(info is not None and info.source == "user")
        if info is None:
            self.details.setHtml("<p>Select a model to see its details.</p>")
            return
        try:
            data = read_model_json(info.json_path)
        except ModelFileError as exc:
            self.details.setHtml(f"<p><b>{info.name}</b>: {exc}</p>")
            return
        training = data.get("training") or {}
        lines = [f"<h3>{info.name}{' (default)' if info.is_default else ''}</h3>",
                 f"<p>{data.get('description') or ''}</p>", "<table cellspacing=4>"]
        rows = [("File", str(info.json_path)), ("Network", ", ".join(f"{k} {v}" for k, v in data['network'].items())),
                ("Training noise", training.get("noise")), ("Training data", training.get("data")),
                ("Training", ", ".join(f"{k} {v}" for k, v in training.items() if k not in ("noise", "data"))),
                ("Metrics", _metrics_text(data.get("metrics"))),
                ("Measured here", _metrics_text(self.measured.get(info.name))),
                ("Licence", data.get("licence"))]
        for key, value in rows:
            if value:
                lines.append(f"<tr><td><b>{key}</b></td><td>{value}</td></tr>")
        lines.append("</table>")
        self.details.setHtml("".join(lines))

    # ------------------------------------------------------------ actions

    def set_default(self) -> None:
        info = self.selected()
        if info is None or info.error is not None:
            return
        refused = unfit_as_default(info.json_path)
        if refused is not None and QMessageBox.question(
                self, "Make it the default?", f"'{info.name}' may not work as the default model: {refused}.\n\n"
                f"New watermarks would then not read back. Make it the default anyway?") \
                != QMessageBox.StandardButton.Yes:
            return
        try:
            set_default_model(info.name)
        except (ModelFileError, OSError) as exc:
            show_error(self, str(exc))
            return
        self.status.emit(f"Default model: {info.name}")
        self.refresh()
        self.ctx.models.reload()

    def remove(self) -> None:
        info = self.selected()
        if info is None or info.source != "user":
            return
        extra = " It is the default model: the shipped default takes its place." if info.is_default else ""
        if QMessageBox.question(self, "Remove model?", f"Delete the model '{info.name}' from {user_models_dir()}?"
                                f"{extra} Images watermarked with it can then no longer be read here.") \
                != QMessageBox.StandardButton.Yes:
            return
        try:
            remove_model(info.name)
        except (ModelFileError, OSError) as exc:
            show_error(self, str(exc))
            return
        self.measured.pop(info.name, None)
        self.status.emit(f"Removed model {info.name}")
        self.ctx.models_changed.emit()
        if info.is_default:
            self.ctx.models.reload()
        self.refresh()

    def choose_import(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Import a model (choose its .json or .safetensors file)",
                                              self.ctx.settings.folder("models"),
                                              "MBRS Studio models (*.json *.safetensors)")
        if name:
            self.import_model(Path(name))

    def import_model(self, path: Path, name: str | None = None) -> None:
        self.ctx.settings.remember_folder("models", path)
        name = name or path.with_suffix("").name
        existing = [i.name for i in self.infos]
        replace = False
        if name in existing:
            new_name, ok = QInputDialog.getText(self, "Model name", f"A model called '{name}' is installed. "
                                                f"Import under another name (or the same to replace it):", text=name)
            if not ok or not new_name.strip():
                return
            name = new_name.strip()
            replace = name in existing
        try:
            check_name(name)
        except ModelFileError as exc:
            show_error(self, str(exc))
            return
        self.ctx.tasks.run("Import model", lambda c: install_model(path, name, replace), on_result=self._imported,
                           parent_widget=self)

    def _imported(self, info: ModelInfo) -> None:
        self.status.emit(f"Imported model '{info.name}'")
        self.ctx.models_changed.emit()
        if self.ctx.models.wm is None and QMessageBox.question(
                self, "Use this model?", f"Make '{info.name}' the default model?") == QMessageBox.StandardButton.Yes:
            names = [i.name for i in self.infos]
            self.table.selectRow(names.index(info.name))
            self.set_default()

    def choose_measure(self) -> None:
        info = self.selected()
        if info is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Folder of photos to measure on", self.ctx.settings.folder("open"))
        if folder:
            self.measure(info, Path(folder))

    def measure(self, info: ModelInfo, folder: Path) -> None:
        device = self.ctx.models.device
        self.ctx.tasks.run(f"Measure {info.name}", lambda c: measure(c, info.json_path, folder, device),
                           on_result=lambda m: self._measured(info.name, m), parent_widget=self)

    def _measured(self, name: str, metrics: dict) -> None:
        self.measured[name] = metrics
        self.status.emit(f"{name}: PSNR {metrics['psnr']:.2f} dB, BER under JPEG 50 {100 * metrics['ber']:.2f} % "
                         f"on {metrics['images']} photo(s)")
        self.refresh()

    def show_folder(self) -> None:
        folder = user_models_dir()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        self.status.emit(f"Models folder: {folder}")
