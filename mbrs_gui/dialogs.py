"""The Preferences, About, Help and "Continue a run" dialogs."""
from __future__ import annotations

import html

import platform

import PySide6
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLabel, QListWidget,
                               QListWidgetItem, QSpinBox, QVBoxLayout, QWidget)

from mbrs_engine.train.runs import RunSummary

from mbrs_engine.devices import available_devices, device_label, torch_version
from mbrs_engine.model_files import user_models_dir

from . import APP_NAME, __version__
from .context import AppContext
from .settings import THEMES


class PreferencesDialog(QDialog):
    """Theme, inference device and the default save quality; applied by the caller on accept."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.theme = QComboBox()
        for name in THEMES:
            self.theme.addItem(name.capitalize(), name)
        self.theme.setCurrentIndex(THEMES.index(ctx.settings.get("theme")))
        self.device = QComboBox()
        for name in available_devices():
            self.device.addItem(device_label(name), name)
        self.device.setCurrentIndex(max(0, self.device.findData(ctx.models.device)))
        self.device.setToolTip("Where the watermarking network runs (training has its own choice in the Train tab)")
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(int(ctx.settings.get("save_quality")))
        form = QFormLayout()
        form.addRow("Theme", self.theme)
        form.addRow("Run the model on", self.device)
        form.addRow("JPEG / WebP quality", self.quality)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def values(self) -> dict:
        return {"theme": self.theme.currentData(), "device": self.device.currentData(),
                "save_quality": self.quality.value()}


def about_html(ctx: AppContext) -> str:
    wm = ctx.models.wm
    if wm is not None:
        try:
            capacity = f"{wm.capacity} characters"
        except ValueError:
            capacity = "raw bits only"
        model = (f"<b>{wm.name}</b> — {wm.image_size}×{wm.image_size}, L = {wm.message_length} bits, "
                 f"text capacity {capacity}<br>{wm.metadata.get('description', '')}<br>"
                 f"<small>{wm.metadata.get('path', '')}</small>")
    else:
        model = ctx.models.problem or "loading…"
    return (f"<h2>{APP_NAME} {__version__}</h2>"
            f"<p>Robust, invisible image watermarking built on <b>MBRS</b> (Jia, Fang &amp; Zhang, "
            f"<i>Mini-Batch of Real and Simulated JPEG compression</i>, ACM Multimedia 2021).</p>"
            f"<p><b>Model:</b> {model}</p>"
            f"<p><b>Models folder:</b> {user_models_dir()}<br><b>Device:</b> {ctx.models.device}</p>"
            f"<p><small>Python {platform.python_version()} · PySide6 {PySide6.__version__} · "
            f"PyTorch {torch_version()}</small></p><p>MIT licence.</p>")


class _TextDialog(QDialog):
    """A dialog that shows one block of rich text (and, optionally, a picture above it) with a Close button."""

    def __init__(self, title: str, text: str, width: int, parent: QWidget | None = None,
                 picture: QLabel | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.text = QLabel(text)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setMinimumWidth(width)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        if picture is not None:
            layout.addWidget(picture)
        layout.addWidget(self.text)
        layout.addWidget(buttons)


class AboutDialog(_TextDialog):
    def __init__(self, ctx: AppContext, icon: QIcon, parent: QWidget | None = None):
        logo = QLabel()
        logo.setPixmap(icon.pixmap(96, 96))
        logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        super().__init__(f"About {APP_NAME}", about_html(ctx), 460, parent, logo)


def help_html(shortcuts: list[tuple[str, str]]) -> str:
    """The Help window's text: the workflow, what the figures mean, and the keyboard shortcuts."""
    rows = "".join(f"<tr><td><b>{html.escape(key)}</b></td><td>{html.escape(text)}</td></tr>"
                   for text, key in shortcuts)
    return (f"<h2>{APP_NAME} help</h2>"
            "<p><b>Embed</b>: drop photos (or Ctrl+O), type the message, move the strength slider (higher: more "
            "robust, more visible), then Save (Ctrl+S) or Save all. Every saved file is read back: a warning says "
            "when its message does not read back. An image that already carries a watermark asks first.</p>"
            "<p><b>Verify</b>: open a watermarked image, add attacks (JPEG, crops anywhere, rotation, flip, ...) "
            "and Decode (Ctrl+D). <i>p-value</i>: the chance that an unmarked image would pass; a watermark is "
            "reported below 1e-6. Every installed model is tried unless you untick it.</p>"
            "<p><b>Train</b>: train a model on your own photos; it becomes the default only when its validation "
            "shows that its messages read back. <b>Models</b>: choose the default, import, measure, remove.</p>"
            "<p>The same engine runs from the command line: <code>mbrs embed</code>, <code>mbrs decode</code>, "
            "<code>mbrs attack</code>, <code>mbrs eval</code> (see <code>mbrs --help</code>).</p>"
            f"<h3>Keyboard shortcuts</h3><table cellspacing=4>{rows}</table>")


class HelpDialog(_TextDialog):
    def __init__(self, shortcuts: list[tuple[str, str]], parent: QWidget | None = None):
        super().__init__(f"{APP_NAME} help", help_html(shortcuts), 560, parent)


def steps_to_continue(run: RunSummary) -> int:
    """Where "Continue a run" trains to by default: the run's own steps, or half as many again once it finished."""
    return run.config.steps if not run.finished else run.step + max(1000, run.config.steps // 2)


class ResumeDialog(QDialog):
    """The runs found in the runs folder (progress, best validation BER, age), "Other folder…", and the step to
    train until; :meth:`choice` is (run folder, steps) after accept."""

    def __init__(self, runs: list[RunSummary], browse_from: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Continue a run")
        self.runs, self.browse_from, self.other = runs, browse_from, None
        self.list = QListWidget()
        for run in runs:
            item = QListWidgetItem(run.describe())
            item.setToolTip(str(run.path))
            self.list.addItem(item)
        self.list.currentRowChanged.connect(self._selected)
        self.list.itemDoubleClicked.connect(lambda _: self.accept())
        self.steps = QSpinBox()
        self.steps.setRange(1, 10_000_000)
        self.steps.setSingleStep(100)
        self.steps.setGroupSeparatorShown(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Continue")
        other = buttons.addButton("Other folder…", QDialogButtonBox.ButtonRole.ActionRole)
        other.clicked.connect(self._browse)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Train until step", self.steps)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Runs in the runs folder, most recent first:"))
        layout.addWidget(self.list)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(560, 360)
        if runs:
            self.list.setCurrentRow(0)

    def _selected(self, row: int) -> None:
        if 0 <= row < len(self.runs):
            self.steps.setValue(steps_to_continue(self.runs[row]))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Run folder to continue", self.browse_from)
        if folder:
            self.other = folder
            self.accept()

    def choice(self) -> tuple[str, int | None]:
        """(run folder, steps); steps None for a folder picked with "Other folder…" (the run's own)."""
        if self.other is not None:
            return self.other, None
        return str(self.runs[self.list.currentRow()].path), self.steps.value()
