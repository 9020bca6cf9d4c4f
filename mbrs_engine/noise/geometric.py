"""Geometric and mixing noise layers: Crop, Cropout, Dropout, CropResize, Resize, Jitter.

All follow the engine's pixel convention (float ``(N, 3, H, W)`` RGB in
``[-1, 1]``), work on any ``H`` and ``W`` and draw their random rectangles and
masks from the global torch generator on the input's device (one independent
draw per image of the batch), so ``torch.manual_seed`` makes them repeatable.

The area ratio ``p`` of Crop, Cropout and CropResize is the paper's: the kept
rectangle has relative height and width ``sqrt(p)`` each (rounded to whole
pixels, half up, at least one), so ``Crop(0.035)`` keeps about 3.5 % of the image.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._util import call_spec, check_number
from .base import NoiseLayer


def _scaled(side: int, factor: float) -> int:
    """``side * factor`` rounded half up, at least 1."""
    return max(1, math.floor(side * factor + 0.5))


def _box_size(h: int, w: int, p: float) -> tuple[int, int]:
    """Height and width of a rectangle of area ratio ``p`` with the image's aspect."""
    side = math.sqrt(p)
    return min(h, _scaled(h, side)), min(w, _scaled(w, side))


def _random_boxes(x: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Random top-left corners (one per image) of rectangles of area ratio ``p``."""
    n, _, h, w = x.shape
    bh, bw = _box_size(h, w, p)
    top = torch.randint(0, h - bh + 1, (n,), device=x.device)
    left = torch.randint(0, w - bw + 1, (n,), device=x.device)
    return top, left, bh, bw


def _box_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Boolean mask ``(N, 1, H, W)``, true inside one random rectangle per image."""
    top, left, bh, bw = _random_boxes(x, p)
    rows = torch.arange(x.shape[2], device=x.device)
    cols = torch.arange(x.shape[3], device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + bh)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + bw)
    return in_rows[:, None, :, None] & in_cols[:, None, None, :]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize, antialiased when it shrinks."""
    if tuple(size) == tuple(x.shape[-2:]):
        return x
    shrink = size[0] < x.shape[2] or size[1] < x.shape[3]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


class Crop(NoiseLayer):
    """Keep a random rectangle of area ratio ``p``; replace the rest with ``fill``.

    The output keeps the input's size.  ``fill`` is a value in ``[-1, 1]``:
    ``0.0`` (mid-grey) as the reference implementation, ``1.0`` (white) as the
    paper's crop test.
    """

    def __init__(self, p: float, fill: float = 0.0):
        super().__init__()
        self.p = check_number("Crop", "p", p, 0.0, 1.0, low_open=True)
        self.fill = check_number("Crop", "fill", fill, -1.0, 1.0)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        return torch.where(_box_mask(encoded, self.p), encoded, self.fill)

    def spec(self) -> str:
        return call_spec("Crop", self.p, **({"fill": self.fill} if self.fill != 0.0 else {}))


class Cropout(NoiseLayer):
    """Encoded pixels inside a random rectangle of area ratio ``p``, cover pixels outside."""

    needs_cover = True

    def __init__(self, p: float):
        super().__init__()
        self.p = check_number("Cropout", "p", p, 0.0, 1.0, low_open=True)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        cover = self._require_cover(encoded, cover)
        return torch.where(_box_mask(encoded, self.p), encoded, cover)

    def spec(self) -> str:
        return call_spec("Cropout", self.p)


class Dropout(NoiseLayer):
    """Per pixel (all three channels alike), the encoded value with probability ``p``, else the cover's."""

    needs_cover = True

    def __init__(self, p: float):
        super().__init__()
        self.p = check_number("Dropout", "p", p, 0.0, 1.0)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        cover = self._require_cover(encoded, cover)
        n, _, h, w = encoded.shape
        keep = torch.rand((n, 1, h, w), device=encoded.device) < self.p
        return torch.where(keep, encoded, cover)

    def spec(self) -> str:
        return call_spec("Dropout", self.p)


class CropResize(NoiseLayer):
    """Cut out a random rectangle of area ratio ``p`` (the image's aspect) and resize it back to full size.

    A real crop followed by bilinear up-scaling (not in the paper): the
    decoder sees a zoomed-in part of the image at the size it expects.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = check_number("CropResize", "p", p, 0.0, 1.0, low_open=True)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        top, left, bh, bw = _random_boxes(encoded, self.p)
        crops = [encoded[i:i + 1, :, t:t + bh, l:l + bw]
                 for i, (t, l) in enumerate(zip(top.tolist(), left.tolist()))]
        return _resize(torch.cat(crops), tuple(encoded.shape[-2:]))

    def spec(self) -> str:
        return call_spec("CropResize", self.p)


class Resize(NoiseLayer):
    """Resize by ``scale``: bilinear, antialiased when shrinking.

    Each side becomes ``side * scale`` rounded half up (at least 1), so the
    output has a different size, unless ``back=True``: then the image is
    resized back to its original size, which a decoder for a fixed input size
    needs (the detail lost on the way stays lost).
    """

    def __init__(self, scale: float, back: bool = False):
        super().__init__()
        self.scale = check_number("Resize", "scale", scale, 0.0, 16.0, low_open=True)
        if not isinstance(back, bool):
            raise ValueError(f"Resize: back must be True or False, got {back!r}")
        self.back = back

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        h, w = encoded.shape[-2:]
        out = _resize(encoded, (_scaled(h, self.scale), _scaled(w, self.scale)))
        return _resize(out, (h, w)) if self.back else out

    def spec(self) -> str:
        return call_spec("Resize", self.scale, **({"back": True} if self.back else {}))


class Jitter(NoiseLayer):
    """A small random similarity per image: a turn within +-``angle`` degrees, a scale within 1 +- ``scale``
    and a shift within +-``shift`` pixels each way, about the centre, resampled bilinearly (edges repeated).

    What the decoder sees once a geometric edit has been undone only approximately: the synchronisation
    of a turned, cropped or resized photo is off by a fraction of a degree and of a pixel, and the
    resampling softens the pattern.  All ranges 0 give the image back unchanged.
    """

    def __init__(self, angle: float = 1.0, shift: float = 1.0, scale: float = 0.02):
        super().__init__()
        self.angle = check_number("Jitter", "angle", angle, 0.0, 45.0)
        self.shift = check_number("Jitter", "shift", shift, 0.0, 64.0)
        self.scale = check_number("Jitter", "scale", scale, 0.0, 0.5, high_open=True)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = encoded.shape

        def uniform(half: float) -> torch.Tensor:
            return (torch.rand(n, device=encoded.device) * 2 - 1) * half
        turn = uniform(math.radians(self.angle))
        zoom = 1.0 + uniform(self.scale)
        cos, sin = torch.cos(turn) / zoom, torch.sin(turn) / zoom
        # output pixel -> input pixel, about the centre, written in grid_sample's [-1, 1] coordinates
        theta = torch.stack([torch.stack([cos, -sin * h / w, uniform(self.shift) * 2 / w], 1),
                             torch.stack([sin * w / h, cos, uniform(self.shift) * 2 / h], 1)], 1)
        grid = F.affine_grid(theta.to(encoded.dtype), [n, 3, h, w], align_corners=False)
        return F.grid_sample(encoded, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def spec(self) -> str:
        return call_spec("Jitter", self.angle, self.shift, self.scale)
