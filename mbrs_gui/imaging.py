"""Pixel work behind the Embed tab (numpy, no Qt): the engine's prepared watermark at any strength.

The engine runs the networks (and the refinement) once per image and message
(:meth:`mbrs_engine.watermarker.Watermarker.prepare`); its
:class:`~mbrs_engine.watermarker.PreparedEmbedding` renders the marked image at
any strength, and the image the app saves is exactly that render, the same
bits as ``mbrs embed`` with the same message, strength and options.

* :meth:`Residual.render` is the engine's render, cached per strength.
* :meth:`Residual.psnr` is the PSNR of that render; :meth:`Residual.psnr_estimate`
  answers in about 1 ms for the slider (the refined image's target PSNR, or,
  unrefined, a histogram of (original value, residual at strength 1) pairs).
* :meth:`Residual.ssim` uses :func:`mbrs_engine.metrics.ssim` on the whole
  image up to :data:`SSIM_EXACT_PIXELS`, and on a fixed grid of full-resolution
  tiles above that (SSIM is a mean over local windows, so tiles give an
  unbiased estimate; the full 12 MP computation takes tens of seconds).
* :meth:`Residual.visibility` is the engine's visibility figure and map
  (:mod:`mbrs_engine.visibility`) of that render, shown by
  :func:`visibility_heat`: where the mark may show.
* :class:`Preview` renders a screen-sized version in a few milliseconds for
  the slider (its visibility map at strength 1, scaled: the map is about
  proportional to the strength); the full-resolution render follows in the
  background.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mbrs_engine.metrics import image_psnr
from mbrs_engine.metrics import ssim as engine_ssim
from mbrs_engine.visibility import score as visibility_score
from mbrs_engine.visibility import visibility_map
from mbrs_engine.watermarker import PreparedEmbedding

#: Images up to this many pixels get an exact SSIM; larger ones a tile estimate.
SSIM_EXACT_PIXELS = 1_000_000
SSIM_TILE = 256
SSIM_TILES = 12
PREVIEW_SIDE = 1280
_SUBLEVEL_OFFSETS = (-0.375, -0.125, 0.125, 0.375)
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


#: Colours of the visibility view: just noticeable (1) in yellow, twice that and more in red.
_NOTICED, _PLAIN = np.array([255, 214, 0], np.float32), np.array([235, 40, 40], np.float32)


def visibility_heat(original: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Where a change may show (uint8 RGB, h x w x 3): the photo in faint grey, tinted from clear (under half a
    just-noticeable difference) through yellow (1) to red (2 and more), ``seen`` a visibility map (h, w)."""
    grey = 150.0 + 0.35 * (original.astype(np.float32) @ _LUMA)
    seen = seen.astype(np.float32, copy=False)
    alpha = np.clip((seen - 0.5) / 1.5, 0.0, 0.85)[..., None]
    colour = _NOTICED + np.clip(seen - 1.0, 0.0, 1.0)[..., None] * (_PLAIN - _NOTICED)
    return (grey[..., None] * (1.0 - alpha) + colour * alpha + 0.5).astype(np.uint8)


class Residual:
    """The watermark of one image and message: the engine's prepared embedding, its renders and their figures."""

    #: renders kept (the strengths last shown, saved or tried)
    CACHED_RENDERS = 4

    def __init__(self, prepared: PreparedEmbedding):
        self.prepared = prepared
        self.original = np.asarray(prepared.rgb, dtype=np.uint8)
        self._renders: dict[float, np.ndarray] = {}
        self._lock = threading.Lock()
        self.delta = self.render(1.0).astype(np.int16) - self.original.astype(np.int16)
        self._hist: np.ndarray | None = None
        self.last_visibility: tuple[float, float] | None = None  # (strength, figure) last worked out in full

    @property
    def size(self) -> tuple[int, int]:
        return self.original.shape[1], self.original.shape[0]

    def render(self, strength: float) -> np.ndarray:
        """The 8-bit watermarked image at ``strength`` (H, W, 3), as the engine renders it."""
        strength = round(float(strength), 4)
        with self._lock:
            cached = self._renders.get(strength)
        if cached is not None:
            return cached
        out = np.asarray(self.prepared.render(strength).convert("RGB"), dtype=np.uint8)
        with self._lock:
            self._renders[strength] = out
            while len(self._renders) > self.CACHED_RENDERS:
                self._renders.pop(next(iter(self._renders)))
        return out

    def histogram(self) -> np.ndarray:
        """Counts of (original value 0..255, residual at strength 1, -255..255) pairs, (256, 511); built once."""
        if self._hist is None:
            index = self.original.astype(np.int32) * 511 + (self.delta + 255)
            self._hist = np.bincount(index.ravel(), minlength=256 * 511).reshape(256, 511)
        return self._hist

    def psnr(self, strength: float) -> float:
        """PSNR (dB) of :meth:`render` against the original."""
        return float(image_psnr(self.prepared.rgb, Image.fromarray(self.render(strength), "RGB")))

    def psnr_estimate(self, strength: float) -> float:
        """:meth:`psnr` in about a millisecond, without rendering: the refined image's target (within 0.1 dB),
        or, unrefined or saved as checked, the exact PSNR of ``rint(strength * residual at 1)`` (within rounding
        of the engine's; saved as checked, at least the target, which a render under it is scaled to)."""
        target = self.prepared.psnr_target(strength)
        if target is not None and not self.prepared.as_checked:
            return target
        values = np.arange(256, dtype=np.float64)[:, None]
        levels = np.arange(-255, 256, dtype=np.float64)[None, :]
        squared = 0.0
        for offset in _SUBLEVEL_OFFSETS:  # the residual at 1 was rounded: spread each level over its interval
            changed = np.clip(values + np.rint(strength * (levels + offset)), 0, 255) - values
            squared += float((self.histogram() * changed * changed).sum())
        mse = squared / len(_SUBLEVEL_OFFSETS) / self.original.size
        estimate = math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
        return estimate if target is None else max(estimate, target)

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
        rendered = self.render(strength)
        if tiles is None:
            return float(engine_ssim(self.original, rendered)[0]), False
        values = [float(engine_ssim(self.original[y:y + h, x:x + w], rendered[y:y + h, x:x + w])[0])
                  for x, y, w, h in tiles]
        return float(np.mean(values)), True

    def visibility(self, strength: float, check=None) -> tuple[float, np.ndarray]:
        """(visibility figure, map (h, w)) of :meth:`render` against the original, at full resolution
        (:mod:`mbrs_engine.visibility`); ``check`` is called between bands (a cancel point)."""
        seen = visibility_map(self.original, self.render(strength), check=check)
        return visibility_score(seen), seen

    def visibility_estimate(self, strength: float) -> float | None:
        """The figure at ``strength`` scaled from the last one worked out in full (the map is about
        proportional to the strength); None before there is one."""
        if self.last_visibility is None or self.last_visibility[0] <= 0.0:
            return None
        known, figure = self.last_visibility
        return figure * strength / known

    def preview(self, max_side: int = PREVIEW_SIDE) -> "Preview":
        """The screen-sized stand-in, its visibility map at strength 1 included (a fraction of a second)."""
        size = fit_size(*self.size, max_side)
        original = _resize_float(self.original.astype(np.float32), size)
        preview = Preview(original, _resize_float(self.delta.astype(np.float32), size), self.size)
        preview.seen = visibility_map(preview.original_u8(), preview.render(1.0)[0])
        return preview


@dataclass
class Preview:
    """A screen-sized stand-in of a :class:`Residual` for instant slider updates (float32 arrays)."""

    original: np.ndarray
    delta: np.ndarray
    full_size: tuple[int, int]
    seen: np.ndarray | None = None  # the visibility map at strength 1 (set by Residual.preview)

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

    def heat(self, strength: float) -> np.ndarray | None:
        """:func:`visibility_heat` at this strength from the map at strength 1 (None before it is known)."""
        return None if self.seen is None else visibility_heat(self.original_u8(), self.seen * np.float32(strength))
