"""The Verify tab's attack chain (no Qt): ordered attacks applied to an 8-bit image, reproducibly.

JPEG, crop, resize, blur and noise are :mod:`mbrs_engine.attacks` (exactly
what ``mbrs attack`` does); Cropout, Dropout and brightness/contrast are the
engine's noise layers (:mod:`mbrs_engine.noise`) run on the 8-bit image and
rounded back to 8 bit.  Cropout and Dropout mix the attacked image with the
original, so they need it (and must come before anything that changes the
size).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from mbrs_engine.attacks import Attack
from mbrs_engine.imageio import split_alpha
from mbrs_engine.noise import BrightnessContrast, Cropout, Dropout
from mbrs_engine.pixels import pil_to_tensor, quantize, tensor_to_pil


@dataclass(frozen=True)
class Param:
    label: str
    default: float
    minimum: float
    maximum: float
    step: float
    decimals: int
    suffix: str = ""


@dataclass(frozen=True)
class Kind:
    """One kind of attack: its label and parameters."""

    key: str
    label: str
    params: tuple[Param, ...]
    needs_original: bool = False
    help: str = ""


KINDS: dict[str, Kind] = {k.key: k for k in (
    Kind("jpeg", "JPEG", (Param("quality", 50, 1, 100, 5, 0),), help="real libjpeg compression at this quality"),
    Kind("crop", "Crop", (Param("kept area", 0.8, 0.05, 1.0, 0.05, 2),),
         help="keep the central part with this fraction of the area (the image gets smaller)"),
    Kind("cropout", "Cropout", (Param("kept area", 0.5, 0.05, 1.0, 0.05, 2),), needs_original=True,
         help="watermarked pixels inside a random rectangle of this area, original pixels outside"),
    Kind("dropout", "Dropout", (Param("kept share", 0.5, 0.05, 1.0, 0.05, 2),), needs_original=True,
         help="each pixel is the watermarked one with this probability, else the original's"),
    Kind("blur", "Gaussian blur", (Param("sigma", 1.0, 0.1, 10.0, 0.1, 1, " px"),), help="Gaussian filter"),
    Kind("resize", "Resize", (Param("scale", 0.5, 0.1, 4.0, 0.05, 2, "×"),), help="scale both sides"),
    Kind("noise", "Gaussian noise", (Param("std", 5.0, 0.5, 50.0, 0.5, 1, " levels"),),
         help="additive Gaussian noise, standard deviation in 8-bit levels"),
    Kind("brightness", "Brightness", (Param("brightness", 0.1, -0.5, 0.5, 0.05, 2),
                                                 Param("contrast", 1.0, 0.5, 1.5, 0.05, 2)),
         help="brightness and contrast: out = in × contrast + brightness (a share of full scale)"),
)}


class ChainError(ValueError):
    """An attack chain that cannot be applied (e.g. Cropout without the original)."""


@dataclass
class Step:
    kind: str
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ChainError(f"unknown attack {self.kind!r}")
        if not self.values:
            self.values = tuple(p.default for p in KINDS[self.kind].params)

    def describe(self) -> str:
        kind = KINDS[self.kind]
        return kind.label + " " + ", ".join(f"{p.label} {v:.{p.decimals}f}{p.suffix}"
                                             for p, v in zip(kind.params, self.values))

    def _engine_attack(self) -> Attack | None:
        if self.kind in ("jpeg", "crop", "resize", "blur", "noise"):
            value = round(self.values[0]) if self.kind == "jpeg" else self.values[0]
            return Attack(self.kind, float(value))
        return None

    def apply(self, x: torch.Tensor, cover: torch.Tensor | None, seed: int) -> torch.Tensor:
        attack = self._engine_attack()
        if attack is not None:
            return attack.apply(x, seed)
        if self.kind == "brightness":
            layer = BrightnessContrast(brightness=self.values[0], contrast=self.values[1])
        else:
            if cover is None:
                raise ChainError(f"{KINDS[self.kind].label} mixes in the original image: "
                                 f"embed the image in the Embed tab and send it here, or remove this attack")
            if cover.shape != x.shape:
                raise ChainError(f"{KINDS[self.kind].label} must come before attacks that change the image size")
            layer = Cropout(self.values[0]) if self.kind == "cropout" else Dropout(self.values[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return quantize(layer(x, cover))


@dataclass
class Chain:
    steps: list[Step] = field(default_factory=list)
    seed: int = 0

    def describe(self) -> str:
        return " → ".join(s.describe() for s in self.steps) or "no attack"

    @property
    def needs_original(self) -> bool:
        return any(KINDS[s.kind].needs_original for s in self.steps)

    def apply(self, img: Image.Image, original: Image.Image | None = None, check=lambda: None) -> Image.Image:
        """The attacked 8-bit RGB image; ``check()`` is called between steps (to cancel)."""
        rgb, _ = split_alpha(img)
        if not self.steps:
            return rgb
        x = pil_to_tensor(rgb)
        cover = None
        if original is not None:
            cover_rgb, _ = split_alpha(original)
            if cover_rgb.size == rgb.size:
                cover = pil_to_tensor(cover_rgb)
        for i, step in enumerate(self.steps):
            check()
            x = step.apply(x, cover, self.seed + i)
        return tensor_to_pil(x)
