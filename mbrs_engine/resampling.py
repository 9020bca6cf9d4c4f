"""Resampling between an image and the model's H x H grid, and adding an upscaled residual to a photo.

The networks see an antialiased H x H view of any image (:func:`to_model_size`,
PIL bicubic).  The residual the encoder gives at H x H is brought to the
photo's size by the same bicubic kernel, written as a matrix per axis
(:func:`resize_matrix`) and applied as a band (the kernel's few taps per
output pixel, not the whole row of zeros), which keeps it exact, fast at
12 MP, and differentiable (:func:`upscale_residual`, used by embed-time
refinement).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageChops

#: PIL's ``reducing_gap``: shrink by an integer factor with a box filter first, then bicubic (fast, antialiased).
REDUCING_GAP = 3.0
#: The largest residual (8-bit levels) the fast add path takes; larger ones take the exact slow path.
_FAST_RESIDUAL_LIMIT = 127.0
_ROW_BLOCK_ELEMENTS = 1 << 21

def to_model_size(rgb: Image.Image, size: int) -> Image.Image:
    """The antialiased ``size`` x ``size`` view of an RGB image that the networks see."""
    if rgb.size == (size, size):
        return rgb
    return rgb.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = -0.5, as PIL's BICUBIC)."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def placement_matrix(out_size: int, in_size: int, offset: float, length: float, edge: bool) -> torch.Tensor:
    """(out, in) resampling of an ``in_size`` signal placed at [offset, offset + length] on ``out_size`` pixels.

    Bicubic, antialiased when shrinking.  Output pixels whose centre falls
    outside the placed signal get a zero row (``edge=False``: the caller fills
    them) or repeat the nearest edge (``edge=True``).
    """
    scale = in_size / length
    width = max(scale, 1.0)
    centers = ((torch.arange(out_size, dtype=torch.float64) + 0.5) - offset) * scale
    inside = (centers >= 0) & (centers <= in_size)
    centers = centers.clamp(0.0, float(in_size))
    taps = torch.arange(in_size, dtype=torch.float64) + 0.5
    weights = _cubic((taps[None, :] - centers[:, None]) / width)
    weights = weights / weights.sum(1, keepdim=True)
    return (weights if edge else weights * inside[:, None]).float()


@lru_cache(maxsize=32)
def resize_matrix(out_size: int, in_size: int) -> torch.Tensor:
    """(out, in) matrix of PIL-style bicubic resampling, antialiased (kernel widened) when shrinking."""
    return placement_matrix(out_size, in_size, 0.0, float(out_size), edge=True)


@lru_cache(maxsize=32)
def _resize_band(out_size: int, in_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`resize_matrix` as a band: for each output pixel the k input pixels of its kernel (out, k) and their
    weights (out, k), k the widest kernel (4 when enlarging).  Applying it costs k multiply-adds per output
    pixel instead of ``in_size``: the same sums without the zeros."""
    matrix = resize_matrix(out_size, in_size)
    nonzero = matrix != 0
    first = nonzero.float().argmax(1)
    last = in_size - 1 - nonzero.flip(1).float().argmax(1)
    k = int((last - first).max()) + 1
    taps = first.clamp(max=in_size - k)[:, None] + torch.arange(k)
    return taps, matrix.gather(1, taps)


def _bands(residual: torch.Tensor, width: int, height: int, box: tuple[int, int, int, int]):
    """The bands of the (height, h) and (width, w) resampling that land in ``box``."""
    left, top, right, bottom = box
    rows, cols = _resize_band(height, residual.shape[1]), _resize_band(width, residual.shape[2])
    return tuple(t[top:bottom] for t in rows), tuple(t[left:right] for t in cols)


def _along_width(x: torch.Tensor, band: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x (..., n) resampled along its last axis by a band: (..., out)."""
    taps, weights = band
    out = x.index_select(-1, taps[:, 0]) * weights[:, 0]
    for t in range(1, taps.shape[1]):
        out = out.addcmul_(x.index_select(-1, taps[:, t]), weights[:, t])
    return out


def _along_height(x: torch.Tensor, band: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x (c, n, w) resampled along its rows by a band: (c, out, w), as one matrix product with the band written
    out densely over the input rows it reads only (a block of output rows reads a few input rows, so the product
    is small, and it reads each of them once instead of gathering a copy per tap)."""
    x, (taps, weights) = _used_rows(x, band)
    dense = torch.zeros(taps.shape[0], x.shape[-2], dtype=x.dtype)
    dense.scatter_add_(1, taps, weights.to(x.dtype))
    return torch.matmul(dense, x)


def _used_rows(residual: torch.Tensor, rows) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The residual's rows (second-last axis) the band ``rows`` reads, and the band renumbered for them (a strip
    of the output reads a strip of the residual)."""
    taps, weights = rows
    first, last = int(taps.min()), int(taps.max())
    return residual[..., first:last + 1, :], (taps - first, weights)


def _upscale(residual: torch.Tensor, rows, cols) -> torch.Tensor:
    """The residual (c, h, w) resampled by the bands: along the width first, on the few rows it reads, then
    along the height, which gathers whole rows (the cheap way round when enlarging)."""
    residual, rows = _used_rows(residual, rows)
    return _along_height(_along_width(residual, cols), rows)


def _upscaled_offsets(residual: torch.Tensor, rows, cols) -> torch.Tensor:
    """round(resampled residual) + 128 as uint8 (3, out height, out width); the residual is (3, h, w) in 8-bit
    levels, ``rows`` and ``cols`` the bands.  The second pass runs in blocks of rows, so the float intermediate
    stays small (each value is the same sum as in one piece)."""
    height, width = rows[0].shape[0], cols[0].shape[0]
    residual, rows = _used_rows(residual, rows)
    partial = _along_width(residual.float(), cols)  # (3, rows read, width)
    out = torch.empty(3, height, width, dtype=torch.uint8)
    step = max(1, _ROW_BLOCK_ELEMENTS // (3 * width))
    for top in range(0, height, step):
        block = _along_height(partial, (rows[0][top:top + step], rows[1][top:top + step]))
        out[:, top:top + step] = block.round_().add_(128.0).clamp_(0.0, 255.0)
    return out


def _residual_bound(residual: torch.Tensor, rows, cols) -> float:
    """An upper bound of the resampled residual's magnitude (overshoot included), from the bands."""
    return float(residual.abs().max() * rows[1].abs().sum(1).max() * cols[1].abs().sum(1).max())


def _add_fast(rgb: Image.Image, residual: torch.Tensor, box: tuple[int, int, int, int]) -> Image.Image:
    """rgb + round(resized residual) over ``box``, clipped, in PIL (the residual must stay within +-127 levels)."""
    rows, cols = _bands(residual, rgb.width, rgb.height, box)
    offsets = _upscaled_offsets(residual, rows, cols).numpy()
    size = (cols[0].shape[0], rows[0].shape[0])
    bands = [Image.frombuffer("L", size, offsets[c], "raw", "L", 0, 1) for c in range(3)]
    part = rgb if box == (0, 0, rgb.width, rgb.height) else rgb.crop(box)
    return ImageChops.add(part, Image.merge("RGB", bands), scale=1.0, offset=-128)


def _add_exact(rgb: Image.Image, residual: torch.Tensor, box: tuple[int, int, int, int]) -> Image.Image:
    """The same sum in numpy for any residual size (slower)."""
    rows, cols = _bands(residual, rgb.width, rgb.height, box)
    up = _upscale(residual.float(), rows, cols).round_().permute(1, 2, 0).numpy()
    out = np.clip(np.asarray(rgb.crop(box), dtype=np.float32) + up, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def add_residual(rgb: Image.Image, residual: torch.Tensor) -> Image.Image:
    """``clip(rgb + round(resize(residual)))``: residual (3, h, w) float, in 8-bit levels, resized bicubically."""
    return add_residual_region(rgb, residual, (0, 0, rgb.width, rgb.height))


def add_residual_region(rgb: Image.Image, residual: torch.Tensor, box: tuple[int, int, int, int]) -> Image.Image:
    """``add_residual(rgb, residual).crop(box)``, worked out for the box only (box: left, top, right, bottom)."""
    if _residual_bound(residual, *_bands(residual, rgb.width, rgb.height, box)) <= _FAST_RESIDUAL_LIMIT:
        return _add_fast(rgb, residual, box)
    return _add_exact(rgb, residual, box)


def upscaled_rows(residual: torch.Tensor, width: int, height: int, rows: torch.Tensor) -> torch.Tensor:
    """The rows ``rows`` (n, width, 3) of the residual (3, h, w) resampled to width x height, in float: each row
    reads its kernel's few residual rows, so rows spread over a large photo cost what they hold."""
    (taps, weights), cols = _bands(residual, width, height, (0, 0, width, height))
    partial = _along_width(residual.float(), cols)  # (3, h, width)
    return (partial[:, taps[rows]] * weights[rows][None, :, :, None]).sum(2).permute(1, 2, 0)


def upscale_residual(residual: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The residual (3, h, w) resampled to (3, height, width), in float and differentiable."""
    rows, cols = _bands(residual, width, height, (0, 0, width, height))
    return _upscale(residual, rows, cols)
