"""The Train tab's non-widget parts: scanning a folder of photos, turning the form into a TrainConfig, exporting.

The trainer itself is :class:`mbrs_engine.train.Trainer`, run by
:class:`mbrs_gui.workers.TrainingThread`.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from PIL import Image
from PySide6.QtGui import QImage

from mbrs_engine.model_files import APP_NAME, check_name, set_default_model, unfit_as_default, user_models_dir
from mbrs_engine.train import NetworkConfig, TrainConfig, parse_budget, preset, scan_images
from mbrs_engine.train.export import export_run

from .qimage import thumbnail

SAMPLE_COUNT = 12
MIN_SIDE = 16


@dataclass
class FolderScan:
    folder: Path
    found: int
    usable: int
    broken: list[tuple[str, str]]
    samples: list[QImage]
    names: list[str]


def scan_folder(ctx, folder: Path) -> FolderScan:
    """Count the images under ``folder`` that open (header check) and make a sample grid of them."""
    ctx.progress(0, 0, f"Scanning {folder}")
    paths = scan_images(folder)
    usable, broken = [], []
    for i, path in enumerate(paths):
        if i % 25 == 0:
            ctx.progress(i, len(paths), f"Checking images: {i} of {len(paths)}")
        try:
            with Image.open(path) as img:
                width, height = img.size
            if min(width, height) < MIN_SIDE:
                raise ValueError(f"too small ({width}×{height})")
            usable.append(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is simply not usable
            broken.append((str(path), str(exc) or type(exc).__name__))
    count = min(SAMPLE_COUNT, len(usable))
    picks = [usable[round(i * (len(usable) - 1) / max(count - 1, 1))] for i in range(count)]
    samples, names = [], []
    for path in dict.fromkeys(picks):
        ctx.check()
        try:
            with Image.open(path) as img:
                img.draft("RGB", (256, 256))
                samples.append(thumbnail(img.convert("RGB"), 128))
                names.append(path.name)
        except Exception:  # noqa: BLE001 - a sample that fails to decode is skipped
            continue
    return FolderScan(folder, len(paths), len(usable), broken, samples, names)


@dataclass
class TrainChoices:
    """Everything the Train tab's form sets."""

    data_dir: str
    preset: str
    image_size: int
    message_length: int
    noise: str
    device: str = "cpu"
    budget: str = ""
    steps: int = 1000
    batch_size: int = 16
    channels: int = 32
    blocks: int = 2
    lr: float = 1e-3
    validation_every: int = 200
    val_count: int = 16
    sample_every: int = 100
    workers: int = 0
    seed: int = 0


def preset_network(name: str) -> NetworkConfig:
    return preset(name).network


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "train-cache"


def make_config(c: TrainChoices) -> TrainConfig:
    """A validated TrainConfig: the preset with the form's choices on top."""
    cfg = preset(c.preset)
    cfg.network = dataclasses.replace(cfg.network, image_size=c.image_size, message_length=c.message_length,
                                      channels=c.channels, blocks=c.blocks)
    cfg.noise = c.noise
    cfg.device = c.device
    parse_budget(c.budget)
    cfg.budget = c.budget
    cfg.steps, cfg.batch_size, cfg.seed = c.steps, c.batch_size, c.seed
    cfg.optim.lr = c.lr
    cfg.optim.finetune_steps = min(cfg.optim.finetune_steps, c.steps - 1)
    cfg.validation.every_steps = c.validation_every
    cfg.sample_every_steps = c.sample_every
    cfg.data.train_dir = str(Path(c.data_dir).expanduser())
    cfg.data.val_count = c.val_count
    cfg.data.workers = c.workers
    if cfg.data.cache_dir:  # presets name a relative cache folder: keep the user's cache in the platform's place
        cfg.data.cache_dir = str(cache_dir())
    return cfg.validate()


def default_run_dir(preset_name: str) -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME)) / "runs" / f"{preset_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def default_model_name(run_dir: Path) -> str:
    name = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in run_dir.name).strip("-._") or "my-model"
    return name[:100]


def export_model(ctx, run_dir: Path, name: str, make_default: bool) -> tuple[Path, str | None]:
    """Export the run's best checkpoint into the user's models folder and, when asked and the model is fit
    for it (:func:`mbrs_engine.model_files.unfit_as_default`), make it the default.  Returns (JSON path,
    why it was not made the default, or None)."""
    check_name(name)
    ctx.progress(0, 0, f"Exporting '{name}'")
    json_path, _ = export_run(run_dir, user_models_dir(), name,
                              description=f"Trained in MBRS Studio ({run_dir.name})")
    refused = unfit_as_default(json_path) if make_default else None
    if make_default and refused is None:
        set_default_model(name)
    return json_path, refused
