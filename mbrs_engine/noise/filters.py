"""Filtering and value noise layers: GaussianBlur (alias GF), GaussianNoise, BrightnessContrast.

All follow the engine's pixel convention (float ``(N, 3, H, W)`` RGB in
``[-1, 1]``), keep the input's size, work on any ``H`` and ``W`` and are
differentiable.  GaussianNoise draws from the global torch generator.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._util import call_spec, check_number
from .base import NoiseLayer


def gaussian_kernel1d(sigma: float, size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` over ``size`` taps (odd), float64."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class GaussianBlur(NoiseLayer):
    """Gaussian filter of standard deviation ``sigma`` (pixels), applied per channel.

    ``kernel_size`` (odd) defaults to ``2 * ceil(1.5 * sigma) + 1``, which
    gives the reference's 7x7 kernel for ``sigma = 2`` (3x3 for 0.5, 5x5 for
    1, 11x11 for 3).  The 2-D kernel is the outer product of a normalised 1-D
    Gaussian, applied as two separable depthwise convolutions.  Borders are
    padded by reflection (by replication when the image is too small for it).
    """

    def __init__(self, sigma: float, kernel_size: int | None = None):
        super().__init__()
        self.sigma = check_number("GaussianBlur", "sigma", sigma, 0.0, 100.0, low_open=True)
        if kernel_size is None:
            kernel_size = self._default_kernel_size()
        self.kernel_size = check_number("GaussianBlur", "kernel_size", kernel_size, 1, 1001, integer=True)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"GaussianBlur: kernel_size must be odd, got {self.kernel_size}")
        self.register_buffer("kernel1d", gaussian_kernel1d(self.sigma, self.kernel_size).float(),
                             persistent=False)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        c, r = encoded.shape[1], self.kernel_size // 2
        if r == 0:
            return encoded
        h, w = encoded.shape[-2:]
        mode = "reflect" if min(h, w) > r else "replicate"
        x = F.pad(encoded, (r, r, r, r), mode=mode)
        k = self.kernel1d.to(device=encoded.device, dtype=encoded.dtype)
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    def spec(self) -> str:
        custom = self.kernel_size != self._default_kernel_size()
        return call_spec("GaussianBlur", self.sigma, **({"kernel_size": self.kernel_size} if custom else {}))

    def _default_kernel_size(self) -> int:
        return 2 * math.ceil(1.5 * self.sigma) + 1


#: The paper's name for the Gaussian filter.
GF = GaussianBlur


class GaussianNoise(NoiseLayer):
    """Additive white Gaussian noise, independent per pixel and channel.

    ``std`` is in 8-bit levels (``0..255``): ``GaussianNoise(5)`` adds noise
    of standard deviation 5/255 of the full range (5 / 127.5 in ``[-1, 1]``
    units).  The result is not clamped, like the encoder's output.
    """

    def __init__(self, std: float):
        super().__init__()
        self.std = check_number("GaussianNoise", "std", std, 0.0, 255.0)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        return encoded + torch.randn_like(encoded) * (self.std / 127.5)

    def spec(self) -> str:
        return call_spec("GaussianNoise", self.std)


class BrightnessContrast(NoiseLayer):
    """Deterministic brightness and contrast change, clamped to ``[-1, 1]``.

    ``out = clamp(x * contrast + 2 * brightness, -1, 1)``: ``contrast``
    scales around mid-grey (1 = unchanged, 0 = flat grey) and ``brightness``
    is a fraction of the full range added to every value (0.1 = +25.5 8-bit
    levels, -1..1).
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 1.0):
        super().__init__()
        self.brightness = check_number("BrightnessContrast", "brightness", brightness, -1.0, 1.0)
        self.contrast = check_number("BrightnessContrast", "contrast", contrast, 0.0, 100.0)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        return (encoded * self.contrast + 2.0 * self.brightness).clamp(-1.0, 1.0)

    def spec(self) -> str:
        return call_spec("BrightnessContrast", brightness=self.brightness, contrast=self.contrast)
