"""Choosing how strongly to shape a tiled watermark: the least visible shaping that still reads after a JPEG check.

Shaping (:mod:`mbrs_engine.perceptual`) spends the same energy less
visibly and a visibility cap takes it away where it would show, but on
smooth photos the cap can take too much and on dense textures (grass,
gravel) the decoder needs the peaks the soft clip removes.
:func:`choose_shaping` tries a ladder of shapings, least visible first, on
the working copy (the caps share one visibility map of the photo): each
shaped residual, at the target PSNR and capped, is re-saved as JPEG
(libjpeg through Pillow) at :data:`CAPPED_CHECK_QUALITY` when capped, else at
:data:`CHECK_QUALITY`, and read in place by one decoder pass, the cells
folded onto one tile; the first whose message has at most
:data:`CHECK_ERRORS` wrong bits is kept, else the one with the fewest.  Each
rung tried costs one JPEG and one decoder pass on the working copy.

The check is harsher than a re-save of the photo itself: the working copy
is the photo shrunk to the model's scale, so the JPEG blocks cover more of
each cell.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import torch
from PIL import Image

from .perceptual import Shaping, cap_gain, residual_visibility, shape
from .pixels import pil_to_tensor, tensor_to_pil
from .tiling import cell_map, fold

#: The JPEG quality of the check.
CHECK_QUALITY = 50
#: The JPEG quality of the check of a capped rung: the harshest re-save the product promises to survive (a cap
#: only takes energy away, so it may take it only where the mark still reads after that; at 50, small photos lost
#: JPEG 30 and some crops: docs/watermarking.md, "Visibility").
CAPPED_CHECK_QUALITY = 30
#: The most wrong message bits a shaping may read with after the check (half of what the default payload's
#: BCH code corrects).
CHECK_ERRORS = 7


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """A real JPEG re-save (4:2:0) of a float image (1, 3, h, w) in [-1, 1]."""
    buffer = io.BytesIO()
    tensor_to_pil(x).save(buffer, "JPEG", quality=quality)
    return pil_to_tensor(Image.open(buffer)).to(x.device, x.dtype)


def wrong_message_bits(scores: torch.Tensor, grid: torch.Tensor, T: int, g: int) -> int:
    """Message bits wrong once cell scores (rows, cols) are folded onto one T x T tile, against the tiled
    ``grid`` of 0/1 cells (the first g x g cells of each tile carry the message)."""
    folded = fold(scores[None].float(), T)[0][:g, :g]
    return int(((folded > 0) != (grid[:g, :g].to(folded.device) > 0.5)).sum())


@torch.no_grad()
def choose_shaping(decoder, work: torch.Tensor, raw: torch.Tensor, grid: torch.Tensor, T: int, g: int,
                   ladder: Sequence[Shaping | None], amplitude: float, rgb: Image.Image) -> torch.Tensor:
    """The residual (3, h, w) of the first shaping of ``ladder`` that reads after the check, scaled to rms
    ``amplitude`` ([-1, 1] units: the target PSNR) and capped; else the one that read with the fewest wrong bits.

    ``work`` (1, 3, h, w) is the working copy of the photo ``rgb`` (a visibility cap measures the photo),
    ``raw`` the encoder's residual on it, ``grid`` (rows, cols) the tiled cells of message and pilot."""
    best, fewest, seen = None, None, {}
    for shaping in ladder:
        residual = shape(raw, shaping)
        residual = residual * (amplitude / residual.pow(2).mean().sqrt().clamp_min(1e-12))
        if shaping is not None and shaping.cap is not None:  # one visibility map serves every cap
            key = (shaping.knee, shaping.chroma)
            if key not in seen:
                seen[key] = residual_visibility(rgb, residual)
            residual = residual * cap_gain(seen[key], shaping.cap)
        if len(ladder) == 1:  # nothing to choose
            return residual
        quality = CAPPED_CHECK_QUALITY if shaping is not None and shaping.cap is not None else CHECK_QUALITY
        errors = wrong_message_bits(cell_map(decoder, jpeg((work + residual).clamp(-1.0, 1.0), quality)),
                                    grid, T, g)
        if errors <= CHECK_ERRORS:
            return residual
        if fewest is None or errors < fewest:
            best, fewest = residual, errors
    return best
