"""Perceptual shaping of a watermark residual: the same energy, spent where and how the eye sees it least.

The encoder's raw residual has two visible faults, measured on the
evaluation photos (``benchmarks/bench_visibility.py``, butteraugli):

- *Heavy tails*: the largest values (cell corners, the image's corners) are
  14-42 times the residual's rms and the 99th percentile 6-7 times, so the
  top 1 % of the values carries at least a third of the energy.
  Saved at 40 dB they become bright speckles of 30-100 levels (a dot in the
  corner of a dark photo scored 12.4).  :func:`soft_clip` bends every value
  smoothly towards a knee a small multiple of the rms.
- *Colour*: most of the energy is in green, the channel the eye is most
  sensitive to; the eye sees a change of luma more than an equal change of
  chroma.  :func:`chroma_gain` keeps the luma part of the residual and
  scales its chroma part (its deviation from grey); the default leaves it
  at 1: a gain of 1.5 with a knee of 1.5 was less visible still, but the
  tile search lost rotated and cropped photos (probably because the lattice
  is found by the peaks it removes).

The watermark is then scaled back to its PSNR budget as before, so the
shaping moves energy, it does not remove it.  A texture mask (more residual
where the photo is busy) was measured too and made butteraugli worse at
equal PSNR: the distance is driven by the worst spots, and concentrating the
energy makes them worse (``docs/watermarking.md``, "Shaping").

- *Worst spots*: a visibility *cap* then turns the residual down only where
  the marked photo would show it more than the cap allows (in
  just-noticeable differences, :mod:`mbrs_engine.visibility`) and leaves it
  alone elsewhere, so it takes energy away (the PSNR rises) from the few
  places that decide how visible the mark is.  Flat sky, skin and dark
  surrounds lose most; the tiles elsewhere still carry the message.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from .resampling import add_residual
from .visibility import visibility_map

#: Rec. 601 luma weights of R, G and B.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Shaping:
    """How a residual is shaped before it is scaled to its PSNR (a Watermarker carries one, or None)."""

    knee: float | None = 3.0  # soft-clip knee in multiples of the residual's rms (None: no clipping)
    chroma: float = 1.0       # gain on the chroma part relative to the luma part (1: unchanged)
    cap: float | None = None  # the most visibility (mbrs_engine.visibility, JND) allowed anywhere (None: any)
    spread: int = 1           # a capped pixel takes the least gain of the spread x spread around it (odd; 1: its own)

    def __post_init__(self) -> None:
        if self.knee is not None and not self.knee > 0.0:
            raise ValueError(f"the soft-clip knee must be positive, got {self.knee!r}")
        if not 0.0 <= self.chroma <= 10.0:
            raise ValueError(f"the chroma gain must be in [0, 10], got {self.chroma!r}")
        if self.cap is not None and not self.cap > 0.0:
            raise ValueError(f"the visibility cap must be positive, got {self.cap!r}")
        if self.spread < 1 or self.spread % 2 == 0:
            raise ValueError(f"the cap's spread must be a positive odd number of pixels, got {self.spread!r}")


#: Shapings from least visible to none: a tiled watermark takes the first that still reads after a JPEG check
#: (:mod:`mbrs_engine.shaping_check`): capped at 1.2, 1.4, 1.7, 2.1 and 2.5 just-noticeable differences, each
#: capped pixel taking the least gain of the 3 x 3 around it (the upscale blends neighbours, so a pixel capped alone
#: still showed), then uncapped (2.5: smooth gradients that pass no tighter cap lose their worst spots; the first
#: rung, then a bisection of the rest, cost 1 to 4 checks).  The caps are in the units of the visibility map fitted
#: region by region.  Per pixel from 1.3, the samples' median was 2.03 and the held-out photos' p90 3.23 (3 x 3 from
#: 1.2: 1.89 and 2.74); a first cap of 1 or 1.15, or a cap held tighter on the saved photo, was less visible still
#: but lost crops and turns: docs/watermarking.md, "Visibility" and "The template over three tiles, and the caps'
#: spread made the default".
LADDER = tuple(Shaping(cap=cap, spread=3) for cap in (1.2, 1.4, 1.7, 2.1, 2.5)) + (Shaping(6.0), None)


def luma(residual: torch.Tensor) -> torch.Tensor:
    """The luma part (..., 1, h, w) of a residual (..., 3, h, w)."""
    weights = torch.tensor(LUMA, dtype=residual.dtype, device=residual.device).view(3, 1, 1)
    return (residual * weights).sum(-3, keepdim=True)


def chroma_gain(residual: torch.Tensor, gain: float) -> torch.Tensor:
    """``y + gain * (residual - y)``, y the luma part repeated on the three channels: luma kept, chroma scaled."""
    y = luma(residual)
    return y + gain * (residual - y)


def soft_clip(residual: torch.Tensor, knee: float) -> torch.Tensor:
    """``k tanh(residual / k)`` with k = ``knee`` times the residual's rms: about the identity below k, never
    beyond k in magnitude, sign kept (differentiable)."""
    k = knee * residual.detach().pow(2).mean().sqrt().clamp_min(1e-12)
    return k * torch.tanh(residual / k)


#: The residual's visibility is worked out on a copy of the photo of at most this many pixels (a larger photo is
#: shrunk first): the residual lives on a working copy of at most 0.4 MP, so this still sees each of its pixels
#: over several, for a fraction of the time the full photo takes.
VISIBILITY_PIXELS = 2_000_000


def residual_visibility(rgb: Image.Image, residual: torch.Tensor) -> torch.Tensor:
    """How visible each pixel of a residual (3, h, w; the engine's [-1, 1] units, on a working copy of ``rgb``)
    is in the image it makes: the visibility map (:mod:`mbrs_engine.visibility`) of ``rgb`` plus the upscaled
    residual, its largest value over the image pixels each residual pixel covers, as (h, w).  Photos above
    :data:`VISIBILITY_PIXELS` are measured on a copy shrunk to that size."""
    scale = min(1.0, math.sqrt(VISIBILITY_PIXELS / (rgb.width * rgb.height)))
    if scale < 1.0:
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                         Image.Resampling.BOX)
    seen = torch.from_numpy(visibility_map(rgb, add_residual(rgb, residual.detach().cpu() * 127.5)))
    return F.adaptive_max_pool2d(seen[None, None], tuple(residual.shape[-2:]))[0, 0].to(residual.device)


def cap_gain(seen: torch.Tensor, cap: float, spread: int = 1) -> torch.Tensor:
    """The per-pixel gain min(1, cap / seen) that brings a residual of visibility ``seen`` (h, w; from
    :func:`residual_visibility`) down to at most ``cap`` (the map is about proportional to the residual), each
    pixel taking the least gain of the ``spread`` x ``spread`` pixels around it (the upscale blends neighbours)."""
    gain = (cap / seen.clamp_min(1e-6)).clamp(max=1.0)
    if spread > 1:
        gain = -F.max_pool2d(-gain[None, None], spread, 1, spread // 2)[0, 0]
    return gain


def shape(residual: torch.Tensor, shaping: Shaping | None) -> torch.Tensor:
    """The residual (..., 3, h, w) clipped softly, then its chroma scaled, then brought back to its own
    energy (None: unchanged)."""
    if shaping is None:
        return residual
    shaped = residual
    if shaping.knee is not None:
        shaped = soft_clip(shaped, shaping.knee)
    if shaping.chroma != 1.0:
        shaped = chroma_gain(shaped, shaping.chroma)
    energy = shaped.detach().pow(2).mean().sqrt()
    return shaped * (residual.detach().pow(2).mean().sqrt() / energy) if energy > 0 else shaped
