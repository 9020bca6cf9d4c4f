"""Attacks on PIL images for ``mbrs attack`` and ``mbrs eval``: jpeg, crop, resize, blur, noise.

Each attack is ``name:value`` text (``jpeg:75``, ``crop:0.8``); a chain joins
them with ``+`` (``jpeg:75+crop:0.8``) and applies them left to right;
``identity`` is the empty chain.  They run the engine's own noise layers on
the 8-bit image and return an 8-bit RGB image (an alpha channel is dropped):

* ``jpeg:Q``   real JPEG at quality Q (1..100) through libjpeg, in memory (:class:`RealJpeg`).
* ``crop:F``   keep the central rectangle of area fraction F (0 < F <= 1), same aspect ratio; the image shrinks.
* ``resize:F`` scale both sides by F (bilinear, antialiased when shrinking; :class:`Resize`).
* ``blur:S``   Gaussian blur of standard deviation S pixels (:class:`GaussianBlur`).
* ``noise:S``  additive Gaussian noise of standard deviation S in 8-bit levels (:class:`GaussianNoise`), seeded.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from .imageio import split_alpha
from .noise import GaussianBlur, GaussianNoise, RealJpeg, Resize
from .noise.geometric import _box_size
from .pixels import pil_to_tensor, quantize, tensor_to_pil

ATTACKS = {
    "jpeg": "real JPEG at quality Q (1..100)",
    "crop": "keep the central fraction F of the area (0 < F <= 1)",
    "resize": "scale both sides by F",
    "blur": "Gaussian blur, sigma in pixels",
    "noise": "Gaussian noise, standard deviation in 8-bit levels",
}


class AttackError(ValueError):
    """An attack that cannot be parsed or has an invalid value."""


@dataclass(frozen=True)
class Attack:
    """One attack and its parameter."""

    name: str
    value: float

    def __post_init__(self) -> None:
        if self.name not in ATTACKS:
            raise AttackError(f"unknown attack {self.name!r} (known: {', '.join(ATTACKS)})")
        try:
            self._layer(0)
        except ValueError as exc:
            raise AttackError(f"{self.name}: {exc}") from None

    def spec(self) -> str:
        return f"{self.name}:{self.value:g}"

    def _layer(self, seed: int):
        if self.name == "jpeg":
            if self.value != int(self.value):
                raise ValueError(f"quality must be a whole number, got {self.value:g}")
            return RealJpeg(int(self.value))
        if self.name == "crop":
            if not 0.0 < self.value <= 1.0:
                raise ValueError(f"the kept area fraction must be in (0, 1], got {self.value:g}")
            return None
        if self.name == "resize":
            return Resize(self.value)
        if self.name == "blur":
            return GaussianBlur(self.value)
        return GaussianNoise(self.value)

    def apply(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Attack a float image (1, 3, H, W) in [-1, 1]; the result is rounded to 8 bit."""
        if self.name == "crop":
            return central_crop(x, self.value)
        layer = self._layer(seed)
        if self.name != "noise":  # the only random one; seeding costs more than a small JPEG
            return quantize(layer(x))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = layer(x)
        return quantize(out)


def central_crop(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central rectangle of area ``fraction`` of a (..., H, W) tensor, with the image's aspect ratio."""
    h, w = x.shape[-2:]
    bh, bw = _box_size(h, w, fraction)
    top, left = (h - bh) // 2, (w - bw) // 2
    return x[..., top:top + bh, left:left + bw]


def parse_attack(text: str) -> Attack:
    """``name:value`` (or ``name=value``) as an :class:`Attack`."""
    name, sep, value = text.strip().replace("=", ":").partition(":")
    if not sep:
        raise AttackError(f"attack {text!r} needs a value, e.g. {name or 'jpeg'}:75")
    try:
        number = float(value)
    except ValueError:
        raise AttackError(f"attack {text!r}: {value!r} is not a number") from None
    return Attack(name.strip().lower(), number)


def parse_chain(text: str) -> tuple[Attack, ...]:
    """``identity`` or ``a:1+b:2`` as a tuple of attacks (applied left to right)."""
    text = text.strip()
    if text.lower() in ("identity", "none", ""):
        return ()
    return tuple(parse_attack(part) for part in text.split("+"))


def chain_spec(chain: tuple[Attack, ...]) -> str:
    return "+".join(a.spec() for a in chain) or "identity"


def apply_chain(img: Image.Image, chain: tuple[Attack, ...], seed: int = 0) -> Image.Image:
    """Apply the attacks in order to an image; returns an 8-bit RGB image."""
    rgb, _ = split_alpha(img)
    if not chain:
        return rgb
    x = pil_to_tensor(rgb)
    for i, attack in enumerate(chain):
        x = attack.apply(x, seed + i)
    return tensor_to_pil(x)
