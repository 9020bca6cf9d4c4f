"""The result of verifying a folder: a table of verdicts, exported as CSV or as the HTML evidence report.

The verdicts come from :func:`mbrs_engine.verification.verify_files` (run in a
worker by the Verify tab); the exports are the engine's
:func:`~mbrs_engine.verification.write_csv` and
:func:`~mbrs_engine.verification.write_html`, the same files
``mbrs verify-report`` writes.  Double-clicking a row opens that file in the
Verify tab.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QFileDialog, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from mbrs_engine.verification import Verdict, count_statuses, write_csv, write_html

from . import theme
from .errors import show_exception

COLUMNS = ("", "File", "Result", "Message", "p-value", "Model", "Found as", "JPEG read down to", "Crop read down to")
THUMB = 48


def _cells(v: Verdict) -> list[str]:
    sweep = v.sweep
    quality = sweep.lowest_quality() if sweep else None
    crop = sweep.smallest_crop() if sweep else None
    result = {"detected": "✓ watermark", "not detected": "✗ none", "unreadable": "unreadable"}[v.status]
    return ["", v.path.name, result, v.message or (v.error or ""), "" if v.p_value is None else f"{v.p_value:.3g}",
            v.model or "", v.frame or "", "" if quality is None else f"Q {quality}",
            "" if crop is None else f"{100 * crop:.0f} %"]


class BatchVerifyDialog(QDialog):
    """One row per file; Export CSV…, Export report…; ``open_file`` on double-click."""

    open_file = Signal(str)

    def __init__(self, folder: Path, verdicts: list[Verdict], models: list[str], key_used: bool,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.folder, self.verdicts, self.models, self.key_used = folder, verdicts, models, key_used
        self.setWindowTitle(f"Verified: {folder}")
        counts = count_statuses(verdicts)
        self.summary = QLabel(f"{len(verdicts)} file(s): {counts['detected']} with a watermark, "
                              f"{counts['not detected']} without, {counts['unreadable']} unreadable · models tried: "
                              f"{', '.join(models)}")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(len(verdicts), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 6)
        colours = {"detected": theme.color("good"), "unreadable": theme.color("bad")}
        for row, v in enumerate(verdicts):
            for col, text in enumerate(_cells(v)):
                item = QTableWidgetItem(text)
                item.setToolTip(str(v.path) if col == 1 else text)
                if col == 2 and v.status in colours:
                    item.setForeground(QColor(colours[v.status]))
                self.table.setItem(row, col, item)
            if v.thumbnail:
                image = QImage.fromData(v.thumbnail)
                label = QLabel()
                label.setPixmap(QPixmap.fromImage(image).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                                                Qt.TransformationMode.SmoothTransformation))
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setCellWidget(row, 0, label)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open_file.emit(str(self.verdicts[row].path)))
        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.clicked.connect(self.export_csv)
        self.report_button = QPushButton("Export report…")
        self.report_button.setToolTip("A self-contained HTML page: thumbnails, verdicts and robustness plots")
        self.report_button.clicked.connect(self.export_report)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        hint = QLabel("Double-click a row to open the file in Verify.")
        hint.setObjectName("Muted")
        buttons.addWidget(hint, 1)
        for button in (self.csv_button, self.report_button, close):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.resize(1000, 560)

    def _target(self, title: str, name: str, filter_: str) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, title, str(self.folder / name), filter_)
        return Path(path) if path else None

    def export_csv(self) -> Path | None:
        path = self._target("Export the table", "mbrs-verify.csv", "CSV (*.csv)")
        return self._write(lambda: write_csv(self.verdicts, path)) if path else None

    def export_report(self) -> Path | None:
        path = self._target("Export the evidence report", "mbrs-verify-report.html", "HTML (*.html *.htm)")
        return self._write(lambda: write_html(self.verdicts, path, self.models, self.key_used)) if path else None

    def _write(self, write) -> Path | None:
        try:
            return write()
        except (OSError, ValueError) as exc:
            show_exception(self, exc, "Export failed.")
            return None
