"""Where a cropped image sits in its original frame: the synchronisation hypotheses of decoding.

A :class:`Frame` says "this image is a crop of ``area`` of the original, at
``anchor``" (and, when ``mirrored``, "of the original mirrored left to right":
decoding then mirrors the image back first); :class:`SearchConfig` lists the frames
:meth:`mbrs_engine.watermarker.Watermarker.decode` tries.  For one frame,
:func:`frame_view` places the image back into the presumed original frame at
the model's size (the cut-away part filled), and :func:`erased_cells` says
which cells of the message map the crop took away.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from .pixels import pil_to_tensor
from .resampling import placement_matrix, resize_matrix, to_model_size

ANCHORS = ("center", "top-left", "top-right", "bottom-left", "bottom-right")
_FILLS = ("mean", "edge", "grey")


@dataclass(frozen=True)
class Frame:
    """One synchronisation hypothesis: the image is a crop of ``area`` of the original, at ``anchor``."""

    area: float = 1.0
    anchor: str = "center"
    mirrored: bool = False  # the image was mirrored left to right after the crop

    def describe(self) -> str:
        text = "full" if self.area >= 1.0 else f"crop {self.area:g} {self.anchor}"
        return f"{text}, mirrored" if self.mirrored else text


@dataclass(frozen=True)
class SearchConfig:
    """The crop hypotheses :meth:`Watermarker.decode` tries, in order, after the full frame."""

    area_fractions: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6)
    anchors: tuple[str, ...] = ("center",)  # ANCHORS adds the four corners (5x the hypotheses and the time)
    fill: str = "mean"  # what stands for the cropped-away part: the image's mean colour, its edges, or grey
    batch_size: int = 8
    mirrored: bool = True  # also every frame of a mirrored image (twice the hypotheses)

    def __post_init__(self) -> None:
        if any(not 0.0 < a < 1.0 for a in self.area_fractions):
            raise ValueError(f"search area fractions must lie in (0, 1), got {self.area_fractions}")
        if any(a not in ANCHORS for a in self.anchors) or not self.anchors:
            raise ValueError(f"search anchors must be among {ANCHORS}, got {self.anchors}")
        if self.fill not in _FILLS:
            raise ValueError(f"search fill must be one of {_FILLS}, got {self.fill!r}")
        if self.batch_size < 1:
            raise ValueError(f"search batch size must be positive, got {self.batch_size}")

    def frames(self) -> list[Frame]:
        plain = [Frame()] + [Frame(a, anchor) for a in self.area_fractions for anchor in self.anchors]
        return plain + ([Frame(f.area, f.anchor, mirrored=True) for f in plain] if self.mirrored else [])


#: The default search (the full frame, then central crops of 90 % to 60 % of the area; the same mirrored:
#: 10 hypotheses).
CENTRAL_SEARCH = SearchConfig()
#: Central and corner crops (42 hypotheses with the mirrored ones): finds more crops, takes about 4x longer on
#: unmarked images.
CORNER_SEARCH = SearchConfig(anchors=ANCHORS)


#: The search places the image in its presumed original frame from a view this many times the model size,
#: so that the placement is exact to a fraction of a model pixel.
SEARCH_OVERSAMPLING = 4


def _anchor_offset(anchor: str, free: float) -> tuple[float, float]:
    """(left, top) of a box with ``free`` pixels of slack on each axis."""
    horizontal = {"center": free / 2, "top-left": 0.0, "bottom-left": 0.0, "top-right": free, "bottom-right": free}
    vertical = {"center": free / 2, "top-left": 0.0, "top-right": 0.0, "bottom-left": free, "bottom-right": free}
    return horizontal[anchor], vertical[anchor]


def erased_cells(frame: Frame, grid: int) -> np.ndarray:
    """(grid, grid) flags of the cells of a ``grid`` x ``grid`` message map that lie mostly outside the
    image when it is a crop of ``frame``: at most half of the cell's width or height is covered."""
    side = math.sqrt(min(frame.area, 1.0))
    left, top = _anchor_offset(frame.anchor, 1.0 - side)
    cells = np.arange(grid) / grid

    def covered(start: float) -> np.ndarray:
        overlap = np.clip(np.minimum(cells + 1 / grid, start + side) - np.maximum(cells, start), 0.0, None)
        return overlap * grid > 0.5

    return ~(covered(top)[:, None] & covered(left)[None, :])


def frame_view(view: torch.Tensor, frame: Frame, size: int, fill: str) -> torch.Tensor:
    """The ``size`` x ``size`` view of the presumed original frame.

    ``view`` (3, s, s) in [-1, 1] is the image resized to a square (any s); in
    the frame, the image covers a square of side ``size * sqrt(area)`` at the
    frame's anchor, and the rest is filled (mean colour, edges or grey).
    """
    side = size * math.sqrt(frame.area)
    left, top = _anchor_offset(frame.anchor, size - side)
    edge = fill == "edge"
    rows = placement_matrix(size, view.shape[1], top, side, edge)
    cols = placement_matrix(size, view.shape[2], left, side, edge)
    out = torch.matmul(torch.matmul(rows, view), cols.t())
    if not edge:
        covered = (rows.sum(1)[:, None] * cols.sum(1)[None, :]).clamp(0.0, 1.0)
        value = view.mean((1, 2)) if fill == "mean" else torch.zeros(3)
        out = out + (1.0 - covered) * value[:, None, None]
    return out



def decoder_input(rgb: Image.Image, frame: Frame, size: int, fill: str) -> torch.Tensor:
    """What the decoder sees (3, size, size) in [-1, 1] when it reads ``rgb`` as ``frame``."""
    if frame.mirrored:
        rgb = ImageOps.mirror(rgb)
    if frame.area >= 1.0:
        return pil_to_tensor(to_model_size(rgb, size))[0]
    view = pil_to_tensor(to_model_size(rgb, SEARCH_OVERSAMPLING * size))[0]
    return frame_view(view, frame, size, fill)


def decoder_input_stand_in(x: torch.Tensor, frame: Frame, size: int, fill: str) -> torch.Tensor:
    """:func:`decoder_input` of a float image (1, 3, h, w), differentiable: the resizing as matrix products."""
    side = size if frame.area >= 1.0 else SEARCH_OVERSAMPLING * size
    if frame.mirrored:
        x = torch.flip(x, dims=[-1])
    view = torch.matmul(torch.matmul(resize_matrix(side, x.shape[2]), x[0]), resize_matrix(side, x.shape[3]).t())
    return view if frame.area >= 1.0 else frame_view(view, frame, size, fill)
