"""Training configuration: dataclasses saved as JSON beside every run and checkpoint.

``TrainConfig`` holds everything a run needs; ``apply_overrides`` applies the
CLI's ``--set key=value`` (dotted keys, values read as JSON, else as text; no
``eval``).  Budgets read as ``"90s"``, ``"10m"``, ``"2h"``.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..nets import NetworkConfig
from ..noise import parse_noise

METHODS = ("mbrs", "tsr", "tsr-s")
PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULES = ("constant", "cosine", "onecycle")


@dataclass
class LossConfig:
    """Loss weights of the paper: lambda_E (image MSE), lambda_D (message MSE), lambda_A (adversary); and
    ``visibility``, the weight of the engine's visibility measure (``visibility.training_penalty``; 0: off,
    as the paper)."""

    image: float = 1.0
    message: float = 10.0
    adversary: float = 1e-4
    visibility: float = 0.0


@dataclass
class OptimConfig:
    """Adam for all three networks; optional schedule and a final fine-tune phase at a lower rate."""

    lr: float = 1e-3
    schedule: str = "constant"
    finetune_steps: int = 0
    finetune_lr: float = 1e-4


@dataclass
class DataConfig:
    """Where the images come from and how they are fed."""

    train_dir: str = ""
    val_dir: str = ""             # empty: hold out ``val_count`` images of train_dir (fixed, seeded)
    val_count: int = 32
    workers: int = 1
    cache_dir: str = "auto"       # "auto": the user cache folder; "": no cache (decode every sample)
    cache_side: int = 512         # short side of cached (downscaled) images
    min_scale: float = 0.25       # random resized crop: smallest area fraction of the source


@dataclass
class ValidationConfig:
    """Model selection: BER under real libjpeg at ``quality`` with the strength set for ``target_psnr``."""

    every_steps: int = 200
    quality: int = 50
    target_psnr: float = 36.0


@dataclass
class TrainConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    noise: str = "Combined([JpegMask(),RealJpeg(50),Identity()])"
    init_from: str = ""            # start from these networks: a run's .ckpt or an exported model (.json); step 0
    method: str = "mbrs"           # mbrs | tsr | tsr-s (two-stage; stage 2 trains the decoder on stage2_noise)
    stage1_fraction: float = 0.5   # two-stage methods: share of the steps in stage 1
    stage2_noise: str = "RealJpeg(50)"
    frozen_encoder: str = ""       # a .ckpt or exported model whose encoder, frozen, marks a share of each batch ...
    frozen_share: float = 0.25     # ... this share: the decoder keeps reading what that encoder marked
    loss: LossConfig = field(default_factory=LossConfig)
    target_psnr: float | None = None        # rescale each image's residual to this PSNR (dB)
    target_psnr_start: float | None = None  # if set: schedule linearly from this PSNR to target_psnr ...
    target_psnr_steps: int = 0              # ... over this many steps
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 16
    steps: int = 1000
    budget: str = ""               # wall-clock budget ("10m", "2h"); stops early when spent
    seed: int = 0
    device: str = "auto"           # auto | cpu | cuda
    precision: str = "fp32"        # fp32 | bf16 | fp16 (fp16 on CUDA only)
    channels_last: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    checkpoint_minutes: float = 5.0  # and once after the first step, so that a run is never lost whole
    sample_every_steps: int = 100

    def validate(self) -> "TrainConfig":
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.optim.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {self.optim.schedule!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.batch_size < 1 or self.steps < 1:
            raise ValueError("batch_size and steps must be positive")
        parse_noise(self.noise)
        if self.method != "mbrs":
            parse_noise(self.stage2_noise)
        parse_budget(self.budget)
        if self.frozen_encoder and not (0 < self.frozen_share < 1 and self.frozen_count >= 1):
            raise ValueError(f"frozen_share must be in (0, 1) and mark at least one image of the batch of "
                             f"{self.batch_size}, got {self.frozen_share}")
        return self

    @property
    def frozen_count(self) -> int:
        """How many images of each batch ``frozen_encoder`` marks (0 when it is not set)."""
        return round(self.frozen_share * self.batch_size) if self.frozen_encoder else 0

    def to_dict(self) -> dict:
        return asdict(self)

    def with_absolute_paths(self, base: str | Path | None = None) -> "TrainConfig":
        """A copy with every path (images, cache, ``init_from``) absolute, resolved against ``base`` (default:
        the current folder), so that a run continues from any folder."""
        base = Path(base or Path.cwd())

        def absolute(text: str) -> str:
            return str((base / Path(text).expanduser()).resolve()) if text else text
        data = self.to_dict()
        data["init_from"] = absolute(data["init_from"])
        data["frozen_encoder"] = absolute(data["frozen_encoder"])
        for key in ("train_dir", "val_dir"):
            data["data"][key] = absolute(data["data"][key])
        if data["data"]["cache_dir"] != "auto":
            data["data"]["cache_dir"] = absolute(data["data"]["cache_dir"])
        return TrainConfig.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return _build(cls, data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _build(cls, data: dict):
    """Rebuild a (nested) dataclass from a dict, refusing unknown keys."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a mapping for {cls.__name__}, got {data!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        sub = _dataclass_type(known[name])
        kwargs[name] = _build(sub, value) if sub is not None else value
    return cls(**kwargs)


def _dataclass_type(f: dataclasses.Field):
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return type(default) if dataclasses.is_dataclass(default) else None


def apply_overrides(cfg: TrainConfig, assignments: list[str]) -> TrainConfig:
    """Apply ``key=value`` strings (``network.channels=32``, ``target_psnr=36``) and return a new config."""
    data = cfg.to_dict()
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        *parents, leaf = key.strip().split(".")
        node = data
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ValueError(f"unknown setting {key!r}")
            node = node[p]
        if leaf not in node:
            raise ValueError(f"unknown setting {key!r}")
        node[leaf] = _parse_value(raw.strip())
    return TrainConfig.from_dict(data).validate()


def _parse_value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_budget(text: str) -> float | None:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"1.5h"`` or a number of seconds -> seconds; empty -> None."""
    if not text:
        return None
    m = _BUDGET.match(str(text))
    if not m:
        raise ValueError(f"budget must look like 90s, 10m or 2h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
