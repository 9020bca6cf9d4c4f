"""Train tab: a wizard-like form (photos, preset, message length, noise pool, device, budget) and a live run.

Start runs :class:`mbrs_engine.train.Trainer` on a :class:`~mbrs_gui.workers.TrainingThread`;
the tab shows progress and ETA, live loss and validation-BER curves and the
latest sample images.  Pause/Resume/Cancel map to the trainer's own controls
(Cancel checkpoints before stopping; "Continue a run…" resumes one), and at
the end "Use this model" exports the run into the user's models folder.
"""
from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressBar, QProgressDialog,
                               QPushButton, QSizePolicy, QSpinBox, QSplitter, QToolButton, QVBoxLayout,
                               QWidget)

from mbrs_engine.model_files import ModelFileError, check_name, find_model, user_models_dir
from mbrs_engine.payload import PayloadError, capacity
from mbrs_engine.devices import available_devices, device_label
from mbrs_engine.train import PRESETS, ArchitectureError, NetworkConfig, TrainConfig, Trainer, preset
from mbrs_engine.train.runs import describe_run, find_runs

from .. import train_jobs as jobs
from ..context import AppContext
from ..dialogs import ResumeDialog, steps_to_continue
from ..errors import describe, show_error, show_warning
from ..widgets.form_scroll import FormScrollArea, guard_wheel
from ..noise_pool import POOL, build_spec, selection_from_spec
from ..qimage import array_to_qimage
from ..widgets.plots import LivePlot
from ..widgets.thumbnails import ImageGrid
from .base import Tab

BUDGETS = ("", "10m", "30m", "1h", "2h", "8h", "24h")


def format_duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _spin(low: int, high: int, value: int, step: int = 1) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    return spin


class TrainTab(QWidget, Tab):
    model_exported = Signal(str)  # model name
    status = Signal(str)
    show_requested = Signal()
    title = "Train"

    def __init__(self, ctx: AppContext, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.thread = None
        self.run_dir: Path | None = None
        self.state = "idle"  # idle, running, paused, stopping, finished, cancelled, failed
        self.last_step = None
        self.last_event = None
        self.scan: jobs.FolderScan | None = None
        self.checkpoints = 0
        self._plot_timer = QTimer(self)
        self._plot_timer.setInterval(250)
        self._plot_timer.timeout.connect(self._refresh_progress)
        self._build()
        self._preset_changed()
        self._show_count()

    # ------------------------------------------------------------ form

    def _build(self) -> None:
        data = QGroupBox("1 · Photos")
        self.folder = QLineEdit(self.ctx.settings.get("folders").get("train", ""))
        self.folder.setMinimumWidth(120)
        self.folder.setPlaceholderText("a folder of your photos (searched recursively)")
        self.folder.editingFinished.connect(lambda: self.scan_folder(self.folder.text()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.choose_folder)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.count_label = QLabel("No folder chosen.")  # _show_count says how many photos a run needs
        self.count_label.setObjectName("Muted")
        self.count_label.setWordWrap(True)
        self.samples_grid = ImageGrid(columns=6, side=56)
        box = QVBoxLayout(data)
        box.addLayout(row)
        box.addWidget(self.count_label)
        box.addWidget(self.samples_grid)

        model = QGroupBox("2 · Model")
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.setCurrentText("cpu-small")
        self.preset.currentTextChanged.connect(self._preset_changed)
        self.image_size = _spin(16, 1024, 128, 16)
        self.message_length = _spin(1, 4096, 256)
        self.arch_label = QLabel()
        self.arch_label.setWordWrap(True)
        for spin in (self.image_size, self.message_length):
            spin.valueChanged.connect(self._check_architecture)
        form = QFormLayout(model)
        form.addRow("Preset", self.preset)
        form.addRow("Image size H", self.image_size)
        form.addRow("Message length L (bits)", self.message_length)
        form.addRow(self.arch_label)

        noise = QGroupBox("3 · Noise pool (one per mini-batch)")
        grid = QGridLayout(noise)
        self.noise_boxes: dict[str, tuple[QCheckBox, QDoubleSpinBox | None]] = {}
        for i, entry in enumerate(POOL):
            box = QCheckBox(entry.label)
            box.setToolTip(entry.help)
            box.toggled.connect(self._noise_changed)
            spin = None
            if entry.param is not None:
                spin = QDoubleSpinBox()
                spin.setRange(entry.minimum, entry.maximum)
                spin.setDecimals(entry.decimals)
                spin.setSingleStep(10 ** -entry.decimals if entry.decimals else 5)
                spin.setValue(entry.default)
                spin.setToolTip(entry.param)
                spin.setMaximumWidth(84)
                spin.valueChanged.connect(self._noise_changed)
            grid.addWidget(box, i // 2, (i % 2) * 2)
            if spin is not None:
                grid.addWidget(spin, i // 2, (i % 2) * 2 + 1)
            self.noise_boxes[entry.key] = (box, spin)
        self.noise_extra: list[str] = []
        self.noise_label = QLabel()
        self.noise_label.setObjectName("Muted")
        self.noise_label.setWordWrap(True)
        self.noise_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid.addWidget(self.noise_label, len(POOL) // 2 + 1, 0, 1, 4)

        run = QGroupBox("4 · Run")
        self.device = QComboBox()
        for name in available_devices():
            self.device.addItem(device_label(name), name)
        self.device.setCurrentIndex(self.device.count() - 1)
        self.budget = QComboBox()
        self.budget.setEditable(True)
        self.budget.addItems(BUDGETS)
        self.budget.setToolTip("Wall-clock budget: stop (with a checkpoint) after e.g. 30m or 2h; empty: no limit")
        self.steps = _spin(1, 10_000_000, 20_000, 100)
        form = QFormLayout(run)
        form.addRow("Device", self.device)
        form.addRow("Time budget", self.budget)
        form.addRow("Steps", self.steps)

        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced ▸")
        self.advanced_button.setCheckable(True)
        self.advanced_button.toggled.connect(self._toggle_advanced)
        self.advanced = QWidget()
        form = QFormLayout(self.advanced)
        form.setContentsMargins(0, 0, 0, 0)
        self.batch_size = _spin(1, 1024, 16)
        self.channels = _spin(8, 512, 32, 8)
        self.blocks = _spin(0, 16, 2)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1e-1)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(1e-3)
        self.validation_every = _spin(1, 1_000_000, 200, 50)
        self.val_count = _spin(1, 10_000, 16)
        self.sample_every = _spin(1, 1_000_000, 100, 10)
        self.workers = _spin(0, 32, 0)
        self.seed = _spin(0, 2**31 - 1, 0)
        self.run_folder = QLineEdit()
        self.run_folder.setPlaceholderText("automatic (in the app's data folder)")
        for label, widget in (("Batch size", self.batch_size), ("Channels", self.channels),
                              ("SE blocks", self.blocks), ("Learning rate", self.lr),
                              ("Validate every (steps)", self.validation_every),
                              ("Validation images", self.val_count), ("Samples every (steps)", self.sample_every),
                              ("Data-loading workers", self.workers), ("Seed", self.seed),
                              ("Run folder", self.run_folder)):
            form.addRow(label, widget)
        for spin in (self.channels, self.blocks):
            spin.valueChanged.connect(self._check_architecture)
        self.val_count.valueChanged.connect(self._show_count)
        self.advanced.hide()
        form_run = run.layout()
        form_run.addRow(self.advanced_button)
        form_run.addRow(self.advanced)

        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current step; a checkpoint is written first")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Continue a run…")
        self.resume_button.setToolTip("Continue a stopped run from its last checkpoint")
        self.resume_button.clicked.connect(self.choose_resume)
        controls = QGridLayout()
        controls.addWidget(self.start_button, 0, 0)
        controls.addWidget(self.resume_button, 0, 1)
        controls.addWidget(self.pause_button, 1, 0)
        controls.addWidget(self.cancel_button, 1, 1)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 6, 0)
        for group in (data, model, noise, run):
            side_layout.addWidget(group)
        side_layout.addLayout(controls)
        side_layout.addStretch(1)
        guard_wheel(side)  # scrolling the form must not change the value under the pointer
        scroll = self.form_scroll = FormScrollArea(side, 450)

        # ---- live view
        progress = QGroupBox("Progress")
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m steps")
        self.progress_label = QLabel("Not started.")
        self.status_label = QLabel("")
        self.status_label.setObjectName("Muted")
        for label in (self.progress_label, self.status_label):  # long paths wrap instead of widening the window
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label.setWordWrap(True)
        self.validation_label = QLabel("")
        self.validation_label.setWordWrap(True)
        box = QVBoxLayout(progress)
        box.addWidget(self.progress)
        box.addWidget(self.progress_label)
        box.addWidget(self.validation_label)
        box.addWidget(self.status_label)

        self.loss_plot = LivePlot("Training loss", "step", "loss", log_y=True)
        self.val_plot = LivePlot("Validation bit error rate", "step", "BER (%)")
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.val_plot)

        samples = QGroupBox("Latest samples (cover · watermarked · difference)")
        self.sample_grid = ImageGrid(columns=4, side=84)
        self.sample_hint = QLabel("Samples appear during training.")
        self.sample_hint.setObjectName("Muted")
        box = QVBoxLayout(samples)
        box.addWidget(self.sample_hint)
        box.addWidget(self.sample_grid)

        self.export_box = QGroupBox("Use this model")
        self.model_name = QLineEdit()
        self.make_default = QCheckBox("Make it the default model")
        self.make_default.setToolTip("Only when its validation shows that its messages read back")
        self.make_default.setChecked(False)
        self.export_button = QPushButton("Use this model")
        self.export_button.setToolTip(f"Export the best checkpoint into {user_models_dir()}")
        self.export_button.clicked.connect(self.export)
        row = QHBoxLayout(self.export_box)
        row.addWidget(QLabel("Name"))
        row.addWidget(self.model_name, 1)
        row.addWidget(self.make_default)
        row.addWidget(self.export_button)
        self.export_box.setEnabled(False)

        right = QVBoxLayout()
        right.addWidget(progress)
        right.addWidget(plots, 1)
        right.addWidget(samples)
        right.addWidget(self.export_box)

        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addLayout(right, 1)
        self._update_buttons()

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.advanced_button.setText("Advanced ▾" if on else "Advanced ▸")

    def _preset_changed(self) -> None:
        self._show_config(preset(self.preset.currentText()))

    def _show_config(self, cfg: TrainConfig) -> None:
        """Fill the form from a configuration (a preset's, or a run's being continued)."""
        net = cfg.network
        for spin, value in ((self.image_size, net.image_size), (self.message_length, net.message_length),
                            (self.channels, net.channels), (self.blocks, net.blocks), (self.steps, cfg.steps),
                            (self.batch_size, cfg.batch_size), (self.validation_every, cfg.validation.every_steps),
                            (self.val_count, cfg.data.val_count), (self.sample_every, cfg.sample_every_steps)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self.lr.setValue(cfg.optim.lr)
        selection, self.noise_extra = selection_from_spec(cfg.noise)
        for key, (box, spin) in self.noise_boxes.items():
            box.blockSignals(True)
            box.setChecked(key in selection)
            box.blockSignals(False)
            if spin is not None and selection.get(key) is not None:
                spin.blockSignals(True)
                spin.setValue(selection[key])
                spin.blockSignals(False)
        self._noise_changed()
        self._check_architecture()

    def network(self) -> NetworkConfig:
        base = preset(self.preset.currentText()).network
        return NetworkConfig(self.image_size.value(), self.message_length.value(), channels=self.channels.value(),
                             blocks=self.blocks.value(), diffusion=base.diffusion, diffusion_size=base.diffusion_size,
                             adversary_channels=base.adversary_channels)

    def _check_architecture(self) -> bool:
        try:
            net = self.network()
        except ArchitectureError as exc:
            self.arch_label.setObjectName("Bad")
            self.arch_label.setText(str(exc))
            ok = False
        else:
            try:
                text = f"text capacity {capacity(net.message_length)} characters"
            except PayloadError:
                text = "raw bits only (too few bits for a text message with error correction)"
            kind = "diffusion" if net.diffusion else "plain"
            self.arch_label.setObjectName("Muted")
            self.arch_label.setText(f"{net.image_size}×{net.image_size}, L={net.message_length} ({kind}), "
                                    f"{net.channels} channels × {net.blocks} blocks: {text}.")
            ok = True
        self.arch_label.style().unpolish(self.arch_label)
        self.arch_label.style().polish(self.arch_label)
        self._update_buttons()
        return ok

    def noise_selection(self) -> dict[str, float | None]:
        return {key: (spin.value() if spin is not None else None)
                for key, (box, spin) in self.noise_boxes.items() if box.isChecked()}

    def noise_spec(self) -> str:
        return build_spec(self.noise_selection(), self.noise_extra)

    def _noise_changed(self) -> None:
        try:
            self.noise_label.setText(f"Spec: {self.noise_spec()}")
        except ValueError as exc:
            self.noise_label.setText(f"⚠ {exc}")
        self._update_buttons()

    # ------------------------------------------------------------ data folder

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of training photos",
                                                  self.folder.text() or self.ctx.settings.folder("train"))
        if folder:
            self.folder.setText(folder)
            self.scan_folder(folder)

    def scan_folder(self, folder: str) -> None:
        folder = folder.strip()
        if not folder:
            return
        path = Path(folder).expanduser()
        self.count_label.setText("Scanning…")
        self.ctx.tasks.run("Scan photos", lambda c: jobs.scan_folder(c, path), on_result=self._scanned,
                           on_error=self._scan_failed, key="scan", parent_widget=self)

    def _scan_failed(self, exc: BaseException, details: str) -> None:
        self.scan = None
        self.count_label.setText(describe(exc))
        self.samples_grid.set_images([])
        self._update_buttons()

    def _scanned(self, scan: jobs.FolderScan) -> None:
        self.scan = scan
        self.ctx.settings.remember_folder("train", scan.folder)
        if scan.broken:
            self.count_label.setToolTip("\n".join(f"{p}: {why}" for p, why in scan.broken[:30]))
        self.samples_grid.set_images(scan.samples)
        self._show_count()

    def _show_count(self) -> None:
        scan = self.scan
        if scan is None:
            self.count_label.setText(f"No folder chosen. A run needs at least {self.val_count.value() + 1} photos "
                                     f"({self.val_count.value()} are held out for validation).")
            return
        broken = f", {len(scan.broken)} unreadable" if scan.broken else ""
        text = f"{scan.usable} usable image(s) of {scan.found} found{broken}."
        if scan.usable <= self.val_count.value():
            text += f" At least {self.val_count.value() + 1} are needed ({self.val_count.value()} are held out " \
                    f"for validation)."
        self.count_label.setText(text)
        self._update_buttons()

    # ------------------------------------------------------------ running

    def choices(self) -> jobs.TrainChoices:
        return jobs.TrainChoices(
            data_dir=self.folder.text().strip(), preset=self.preset.currentText(),
            image_size=self.image_size.value(), message_length=self.message_length.value(), noise=self.noise_spec(),
            device=self.device.currentData(), budget=self.budget.currentText().strip(), steps=self.steps.value(),
            batch_size=self.batch_size.value(), channels=self.channels.value(), blocks=self.blocks.value(),
            lr=self.lr.value(), validation_every=self.validation_every.value(), val_count=self.val_count.value(),
            sample_every=self.sample_every.value(), workers=self.workers.value(), seed=self.seed.value())

    def apply_preferences(self, values: dict) -> None:
        for plot in (self.loss_plot, self.val_plot):
            plot.apply_theme()

    def confirm_close(self, parent) -> bool:
        """A run in progress: stop it (after a checkpoint) or keep the window open."""
        if not self.is_running():
            return True
        answer = QMessageBox.question(
            parent, "Training is running",
            "A training run is in progress. Stop it now? A checkpoint is saved first, and you can continue "
            "the run later with “Continue a run…”.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return False
        self.stop_and_wait(parent)
        return True

    def is_running(self) -> bool:
        return self.state in ("running", "paused", "stopping")

    def start(self) -> None:
        if self.is_running():
            return
        if not self.folder.text().strip():
            show_error(self, "Choose a folder of training photos first.")
            return
        try:
            config = jobs.make_config(self.choices())
        except (ValueError, ArchitectureError) as exc:
            show_error(self, f"The training settings are not valid: {describe(exc)}")
            return
        run_dir = Path(self.run_folder.text()).expanduser() if self.run_folder.text().strip() \
            else jobs.default_run_dir(self.preset.currentText())
        if (run_dir / "last.ckpt").exists():
            show_error(self, f"'{run_dir}' already holds a run: continue it with “Continue a run…” or choose "
                             f"another run folder.")
            return
        self._launch(lambda callback: Trainer(config, run_dir, [callback]), run_dir, config.steps)

    def choose_resume(self) -> None:
        """The runs found in the runs folder to pick from (or any folder); then :meth:`resume`."""
        parent = jobs.default_run_dir("x").parent
        runs = find_runs(parent)
        if not runs:
            folder = QFileDialog.getExistingDirectory(self, "Run folder to continue", str(parent))
            if folder:
                self.resume(Path(folder))
            return
        dialog = ResumeDialog(runs, str(parent), self)
        if dialog.exec():
            folder, steps = dialog.choice()
            self.resume(Path(folder), steps)

    def resume(self, run_dir: Path, steps: int | None = None) -> None:
        """Continue the run in ``run_dir`` (until ``steps``, or its own): the form shows the run's settings and the
        plots its validations so far."""
        if self.is_running():
            return
        try:
            run = describe_run(run_dir)
        except (ValueError, OSError) as exc:
            show_error(self, f"'{run_dir}' cannot be continued: {describe(exc)}")
            return
        if run.step == 0:
            show_error(self, f"'{run_dir}' holds no checkpoint (last.ckpt) to continue from.")
            return
        steps = steps or steps_to_continue(run)
        self._show_config(run.config)
        self.steps.setValue(steps)
        self.folder.setText(run.config.data.train_dir)
        self.run_folder.setText(str(run_dir))
        budget, device = self.budget.currentText().strip() or None, self.device.currentData()
        self._launch(lambda callback: Trainer.resume(run_dir, [callback], budget=budget, device=device, steps=steps),
                     run_dir, steps, start_step=run.step, history=run.history)

    def _launch(self, make_trainer, run_dir: Path, total_steps: int, start_step: int = 0,
                history: list[dict] = ()) -> None:
        from ..workers import TrainingThread

        self.run_dir = run_dir
        self.checkpoints = 0
        self.loss_plot.reset()
        self.val_plot.reset()
        for metrics in history:
            self._add_validation(metrics)
        self.val_plot.refresh()
        self.sample_grid.set_images([])
        self.sample_hint.show()
        self.validation_label.setText("")
        self.progress.setRange(0, total_steps)
        self.progress.setValue(start_step)
        self.progress_label.setText(f"Continuing from step {start_step:,} of {total_steps:,}: preparing the data…"
                                    if start_step else "Preparing the data…")
        self.status_label.setText(f"Run folder: {run_dir}")
        self.model_name.setText(jobs.default_model_name(run_dir))
        self.export_box.setEnabled(False)
        self.thread = TrainingThread(make_trainer, self)
        self.thread.event.connect(self._on_event)
        self.thread.crashed.connect(self._on_crash)
        self.thread.finished.connect(self._on_thread_finished)
        self.state = "running"
        self.thread.start()
        self._plot_timer.start()
        self._update_buttons()
        self.status.emit(f"Training started in {run_dir}")

    def toggle_pause(self) -> None:
        if self.state == "running":
            self.thread.pause(True)
            self.state = "paused"
            self.progress_label.setText(self.progress_label.text() + " · paused")
        elif self.state == "paused":
            self.thread.pause(False)
            self.state = "running"
        self._update_buttons()

    def cancel(self) -> None:
        if self.state in ("running", "paused"):
            self.state = "stopping"
            self.status_label.setText("Stopping: finishing the step, validating and writing a checkpoint…")
            self.thread.cancel()
            self._update_buttons()

    def stop_and_wait(self, parent=None) -> None:
        """Cancel (which checkpoints) and wait for the thread, with a modal progress dialog; for closing the app."""
        if self.thread is None or not self.thread.isRunning():
            return
        self.cancel()
        dialog = QProgressDialog("Saving a checkpoint before closing…", "", 0, 0, parent or self)
        dialog.setCancelButton(None)
        dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
        dialog.setMinimumDuration(0)
        dialog.show()
        loop = QEventLoop()
        self.thread.finished.connect(loop.quit)
        if self.thread.isRunning():
            loop.exec()
        dialog.close()

    # ------------------------------------------------------------ events (GUI thread)

    def _on_event(self, event) -> None:
        self.last_event = event
        if event.kind == "step":
            self.last_step = event
            for name, key in (("loss", "loss"), ("message MSE", "message_mse"), ("image MSE", "image_mse")):
                value = event.losses.get(key)
                if isinstance(value, float) and value > 0:
                    self.loss_plot.add(name, event.step, value)
        elif event.kind == "validation":
            m = event.metrics
            self._add_validation({**m, "step": event.step})
            self.val_plot.refresh()
            self.validation_label.setText(
                f"Validation at step {event.step}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}; BER clean "
                f"{100 * m['ber_clean']:.2f} %, JPEG {100 * m['ber_jpeg_s1']:.2f} %, JPEG at "
                f"{m['psnr_target']:.1f} dB {100 * m['ber_jpeg']:.2f} %")
        elif event.kind == "sample":
            self._show_samples(event.samples)
        elif event.kind == "checkpoint":
            self.checkpoints += 1
            self.status_label.setText(f"Checkpoint saved at step {event.step}: {event.message}")
        elif event.kind in ("stage", "prepare"):
            self.status_label.setText(event.message)
        elif event.kind == "done":
            self._refresh_progress()
            self.state = "cancelled" if event.message.startswith("cancelled") else "finished"
            checkpoint = self.run_dir / "last.ckpt" if self.run_dir else None
            saved = checkpoint is not None and checkpoint.exists()
            self.progress_label.setText(
                f"{'Cancelled' if self.state == 'cancelled' else 'Finished'} at step {event.step} of "
                f"{event.total_steps}; "
                + (f"checkpoint saved ({checkpoint})." if saved else "nothing to save yet (stopped before training)."))
            self.status.emit(f"Training {self.state} at step {event.step}")
            self.export_box.setEnabled(saved)
            self._update_buttons()

    def _add_validation(self, m: dict) -> None:
        """One validation (a ``history.jsonl`` entry) on the validation plot."""
        self.val_plot.add("clean", m["step"], 100 * m["ber_clean"], symbol="o")
        self.val_plot.add("JPEG, strength 1", m["step"], 100 * m["ber_jpeg_s1"], symbol="o")
        self.val_plot.add(f"JPEG at {m['psnr_target']:.0f} dB", m["step"], 100 * m["ber_jpeg"], symbol="o")

    def _show_samples(self, samples: dict) -> None:
        images, captions = [], []
        for name in ("cover", "encoded", "difference"):
            batch = samples.get(name)
            if batch is None:
                continue
            for i in range(min(4, batch.shape[0])):
                images.append(array_to_qimage(batch[i]))
                captions.append({"cover": "cover", "encoded": "watermarked", "difference": "difference"}[name])
        self.sample_grid.set_images(images, captions)
        self.sample_hint.hide()

    def _refresh_progress(self) -> None:
        event = self.last_step
        self.loss_plot.refresh()
        if event is None:
            return
        self.progress.setRange(0, event.total_steps)
        self.progress.setValue(event.step)
        if self.state in ("running", "paused"):
            paused = " · paused" if self.state == "paused" else ""
            self.progress_label.setText(f"Step {event.step} of {event.total_steps} · {event.images_per_s:.1f} "
                                        f"images/s · ETA {format_duration(event.eta_s)}{paused}")

    def _on_crash(self, exc: BaseException, details: str) -> None:
        self.state = "failed"
        self.progress_label.setText("Training stopped with an error.")
        show_error(self, f"Training failed: {describe(exc)}", details)
        self._update_buttons()

    def _on_thread_finished(self) -> None:
        self._plot_timer.stop()
        self._refresh_progress()
        if self.state in ("running", "paused", "stopping"):
            self.state = "cancelled"
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.is_running()
        try:
            self.noise_spec()
            noise_ok = True
        except ValueError:
            noise_ok = False
        arch_ok = self.arch_label.objectName() != "Bad"
        self.start_button.setEnabled(not running and noise_ok and arch_ok)
        self.resume_button.setEnabled(not running)
        self.pause_button.setEnabled(self.state in ("running", "paused"))
        self.pause_button.setText("Resume" if self.state == "paused" else "Pause")
        self.cancel_button.setEnabled(self.state in ("running", "paused"))

    # ------------------------------------------------------------ export

    def export(self) -> None:
        if self.run_dir is None:
            return
        name = self.model_name.text().strip()
        try:
            check_name(name)
        except ModelFileError as exc:
            show_error(self, str(exc))
            return
        try:
            find_model(name)
            exists = True
        except ModelFileError:
            exists = False
        if exists and QMessageBox.question(self, "Replace model?", f"A model named '{name}' exists. Replace it?") \
                != QMessageBox.StandardButton.Yes:
            return
        run_dir, make_default = self.run_dir, self.make_default.isChecked()
        self.ctx.tasks.run("Export model", lambda c: jobs.export_model(c, run_dir, name, make_default),
                           on_result=lambda result: self._exported(name, *result, make_default), parent_widget=self)

    def _exported(self, name: str, path: Path, refused: str | None, asked_default: bool) -> None:
        made_default = asked_default and refused is None
        self.status_label.setText(f"Model '{name}' saved to {path}" + (" and made the default" if made_default else ""))
        if refused is not None:
            show_warning(self, f"Model '{name}' was saved, but not made the default model: {refused}.",
                         "The default model is what every new watermark is embedded with and what Verify reads.")
        self.ctx.models_changed.emit()
        if made_default:
            self.ctx.models.reload()
        self.model_exported.emit(name)
