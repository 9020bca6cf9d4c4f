"""Pixel work behind the Embed tab (numpy, no Qt): the watermark residual at any strength, fast.

The network runs once per image and message (embedding at strength 1); the
strength slider then only rescales the residual ``d = marked(1) - original``::

    marked(s) = clip(original + rint(s * d), 0, 255)

This is the GUI's stand-in until the engine offers a public "residual once,
apply at any strength" method: the engine rounds ``s * r`` where ``r`` is its
float residual, while ``d`` is already rounded, so for ``s != 1`` a pixel may
differ by up to ``s / 2`` levels from ``Watermarker.embed(img, text, s)``.
The image saved is exactly :meth:`Residual.render` of the strength shown, and
the PSNR / SSIM shown are of that image.

* :meth:`Residual.psnr` is exact and instant at any size: a histogram of
  (original value, residual) pairs, built once, gives the squared error of any
  strength in about 1 ms.
* :meth:`Residual.ssim` uses :func:`mbrs_engine.metrics.ssim` on the whole
  image up to :data:`SSIM_EXACT_PIXELS`, and on a fixed grid of full-resolution
  tiles above that (SSIM is a mean over local windows, so tiles give an
  unbiased estimate; the full 12 MP computation takes tens of seconds).
* :class:`Preview` renders a screen-sized version in a few milliseconds for
  the slider; the full-resolution render follows in the background.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from mbrs_engine.metrics import ssim as engine_ssim

#: Images up to this many pixels get an exact SSIM; larger ones a tile estimate.
SSIM_EXACT_PIXELS = 1_000_000
SSIM_TILE = 256
SSIM_TILES = 12
PREVIEW_SIDE = 1280
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) scaled down (never up) so that the longer side is at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resize_float(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Box-filter an (H, W, C) float32 array to ``size`` = (w, h), channel by channel."""
    if (arr.shape[1], arr.shape[0]) == size:
        return arr.astype(np.float32, copy=False)
    bands = [np.asarray(Image.fromarray(np.ascontiguousarray(arr[..., c], dtype=np.float32), "F")
                        .resize(size, Image.Resampling.BOX)) for c in range(arr.shape[2])]
    return np.stack(bands, axis=-1)


def paper_difference(delta: np.ndarray) -> np.ndarray:
    """The MBRS paper's residual display (Fig. 4): |luma(marked - original)| min-max normalised, as grey uint8."""
    luma = np.abs(delta.astype(np.float32, copy=False) @ _LUMA)
    low, high = float(luma.min()), float(luma.max())
    if high - low < 1e-6:
        return np.zeros(luma.shape, np.uint8)
    return ((luma - low) * (255.0 / (high - low)) + 0.5).astype(np.uint8)


def _strength_lut(strength: float) -> np.ndarray:
    """rint(strength * d) for d in -255..255, as int16 (index d + 255)."""
    return np.rint(strength * np.arange(-255, 256, dtype=np.float64)).astype(np.int16)


class Residual:
    """The watermark of one image and message: ``original`` and ``d = marked(1) - original``, both (H, W, 3)."""

    def __init__(self, original: np.ndarray, marked_at_1: np.ndarray):
        if original.shape != marked_at_1.shape or original.dtype != np.uint8 or marked_at_1.dtype != np.uint8:
            raise ValueError("original and marked images must be uint8 arrays of the same shape")
        self.original = original
        self.delta = marked_at_1.astype(np.int16) - original.astype(np.int16)
        self._hist: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.original.shape[1], self.original.shape[0]

    def histogram(self) -> np.ndarray:
        """Counts of (original value 0..255, residual -255..255) pairs, (256, 511); built once."""
        if self._hist is None:
            index = self.original.astype(np.int32) * 511 + (self.delta + 255)
            self._hist = np.bincount(index.ravel(), minlength=256 * 511).reshape(256, 511)
        return self._hist

    def render(self, strength: float) -> np.ndarray:
        """The 8-bit watermarked image at ``strength`` (H, W, 3)."""
        out = self.original.astype(np.int16)
        out += _strength_lut(strength)[self.delta + 255]
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)

    def psnr(self, strength: float) -> float:
        """PSNR (dB) of :meth:`render` against the original, exact, without rendering."""
        values = np.arange(256, dtype=np.int64)[:, None]
        changed = np.clip(values + _strength_lut(strength)[None, :], 0, 255) - values
        mse = float((self.histogram() * changed * changed).sum()) / self.original.size
        return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)

    def ssim_tiles(self) -> list[tuple[int, int, int, int]] | None:
        """(left, top, width, height) of the tiles the SSIM estimate uses, or None for an exact SSIM."""
        width, height = self.size
        if width * height <= SSIM_EXACT_PIXELS or min(width, height) < SSIM_TILE:
            return None
        cols = max(1, round(math.sqrt(SSIM_TILES * width / height)))
        rows = max(1, math.ceil(SSIM_TILES / cols))
        lefts = np.linspace(0, width - SSIM_TILE, cols).round().astype(int)
        tops = np.linspace(0, height - SSIM_TILE, rows).round().astype(int)
        return [(int(x), int(y), SSIM_TILE, SSIM_TILE) for y in tops for x in lefts]

    def ssim(self, strength: float) -> tuple[float, bool]:
        """(SSIM of :meth:`render` vs the original, whether it is a tile estimate); nan below 11 x 11 pixels."""
        width, height = self.size
        if min(width, height) < 11:
            return math.nan, False
        tiles = self.ssim_tiles()
        lut = _strength_lut(strength)
        if tiles is None:
            return float(engine_ssim(self.original, self.render(strength))[0]), False
        covers, marked = [], []
        for x, y, w, h in tiles:
            cover = self.original[y:y + h, x:x + w]
            covers.append(cover)
            marked.append(np.clip(cover.astype(np.int16) + lut[self.delta[y:y + h, x:x + w] + 255], 0, 255)
                          .astype(np.uint8))
        a = torch.from_numpy(np.stack(covers)).permute(0, 3, 1, 2)
        b = torch.from_numpy(np.stack(marked)).permute(0, 3, 1, 2)
        return float(engine_ssim(a, b).mean()), True

    def preview(self, max_side: int = PREVIEW_SIDE) -> "Preview":
        size = fit_size(*self.size, max_side)
        original = _resize_float(self.original.astype(np.float32), size)
        return Preview(original, _resize_float(self.delta.astype(np.float32), size), self.size)


@dataclass
class Preview:
    """A screen-sized stand-in of a :class:`Residual` for instant slider updates (float32 arrays)."""

    original: np.ndarray
    delta: np.ndarray
    full_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        return self.original.shape[1], self.original.shape[0]

    def original_u8(self) -> np.ndarray:
        return np.clip(self.original + 0.5, 0, 255).astype(np.uint8)

    def render(self, strength: float) -> tuple[np.ndarray, np.ndarray]:
        """(watermarked RGB, paper-normalised difference) at this strength, both uint8."""
        marked = self.original + np.float32(strength) * self.delta
        np.clip(marked, 0.0, 255.0, out=marked)
        marked_u8 = (marked + 0.5).astype(np.uint8)
        return marked_u8, paper_difference(marked - self.original)
