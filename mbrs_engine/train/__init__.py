"""The MBRS trainer: configuration, presets, data pipeline, training loop, checkpoints, DDP.

>>> from mbrs_engine.train import Trainer, preset
>>> cfg = preset("cpu-small"); cfg.data.train_dir = "photos/"
>>> Trainer(cfg, "runs/first").run()
"""
from ..nets import ArchitectureError, NetworkConfig
from .config import TrainConfig, apply_overrides, parse_budget
from .data import scan_images
from .loop import Trainer, TrainEvent
from .presets import PRESETS, preset

__all__ = ["PRESETS", "ArchitectureError", "NetworkConfig", "TrainConfig", "TrainEvent", "Trainer", "apply_overrides",
           "parse_budget", "preset", "scan_images"]
