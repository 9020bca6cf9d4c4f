"""Choosing how strongly to shape a tiled watermark: the least visible shaping that still reads after a JPEG check.

Shaping (:mod:`mbrs_engine.perceptual`) spends the same energy less
visibly and a visibility cap takes it away where it would show, but on
smooth photos the cap can take too much and on dense textures (grass,
gravel) the decoder needs the peaks the soft clip removes.
:func:`choose_shaping` tries a ladder of shapings, ordered least visible
first (the caps share one visibility map of the photo): each shaped
residual, at the target PSNR and capped, is added to the photo at its own
size over a region of :data:`CHECK_TILES` x :data:`CHECK_TILES` whole tiles
in its centre, re-saved as JPEG (libjpeg through Pillow) at
:data:`CAPPED_CHECK_QUALITY` when capped, else at :data:`CHECK_QUALITY`, and
read in place by one decoder pass, the cells folded onto one tile.  A rung
passes when its message has at most :data:`CAPPED_CHECK_ERRORS` wrong bits (capped) or
:data:`CHECK_ERRORS` (uncapped).  The
least visible rung is checked first, since most photos pass it (every
held-out photo at its size and half the samples); when it fails, the rest of
the ladder is searched by bisection (a rung that fails is taken to mean the
less visible ones before it fail too): 1 check for most photos, at most 4
for the 6 rungs.  The passing rung found is kept, else the one tried that
read with the fewest wrong bits (uncapped rungs only, when it tried any).

The check re-saves the photo at its real size, as people do: a JPEG of the
working copy (the photo shrunk to the model's scale) would put each 8 x 8
block over several times more of each cell, and judged large photos by a
far harsher edit than any they meet.  It reads as many tiles as a reading
in place does (:data:`CHECK_TILES`).
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import torch
from PIL import Image

from .perceptual import Shaping, cap_gain, residual_visibility, shape
from .resampling import add_residual_region
from .tiling import MAX_TILES_READ, cell_map, fold, working_copy

#: The JPEG quality of the check.
CHECK_QUALITY = 50
#: The JPEG quality of the check of a capped rung: the harshest re-save the product promises to survive (a cap
#: only takes energy away, so it may take it only where the mark still reads after that; at 50, small photos lost
#: JPEG 30 and some crops: docs/watermarking.md, "Visibility").
CAPPED_CHECK_QUALITY = 30
#: The most wrong message bits an uncapped shaping may read with after the check at :data:`CHECK_QUALITY` (half
#: of what the default payload's BCH code corrects).
CHECK_ERRORS = 7
#: The most wrong message bits a capped shaping may read with after the check at :data:`CAPPED_CHECK_QUALITY`:
#: what the default payload's BCH code corrects by itself (the full reading folds more tiles and decodes softly
#: beyond it; at 7, photos whose full reading survives JPEG 30 with a cap of 0.7 or 1 were sent to the uncapped
#: rungs: docs/watermarking.md, "Visibility").
CAPPED_CHECK_ERRORS = 14
#: Tiles a side of the photo's region the check re-saves and reads: as many as the fuller reading in place reads.
CHECK_TILES = MAX_TILES_READ


def wrong_message_bits(scores: torch.Tensor, grid: torch.Tensor, T: int, g: int) -> int:
    """Message bits wrong once cell scores (rows, cols) are folded onto one T x T tile, against the tiled
    ``grid`` of 0/1 cells (the first g x g cells of each tile carry the message)."""
    folded = fold(scores[None].float(), T)[0][:g, :g]
    return int(((folded > 0) != (grid[:g, :g].to(folded.device) > 0.5)).sum())


def check_region(rows: int, cols: int, T: int) -> tuple[int, int, int, int]:
    """The cells (top, left, bottom, right) of the check on a working copy of rows x cols cells: the
    :data:`CHECK_TILES` x :data:`CHECK_TILES` whole tiles nearest its centre (fewer where it holds fewer)."""
    def span(n: int) -> tuple[int, int]:
        k = max(1, min(CHECK_TILES, n // T))
        start = T * max(0, (n // T - k) // 2)
        return start, min(n, start + k * T)

    (top, bottom), (left, right) = span(rows), span(cols)
    return top, left, bottom, right


def wrong_bits_after_jpeg(decoder, rgb: Image.Image, residual: torch.Tensor, grid: torch.Tensor, T: int, g: int,
                          quality: int) -> int:
    """Wrong message bits read from :func:`check_region` of the photo ``rgb`` plus ``residual`` (3, h, w, [-1, 1]
    units, on the working copy of ``grid``'s rows x cols cells), at the photo's size, after a JPEG re-save."""
    rows, cols = grid.shape
    cell = residual.shape[-1] // cols
    top, left, bottom, right = check_region(rows, cols, T)
    sx, sy = rgb.width / (cols * cell), rgb.height / (rows * cell)
    box = (round(left * cell * sx), round(top * cell * sy), round(right * cell * sx), round(bottom * cell * sy))
    buffer = io.BytesIO()
    add_residual_region(rgb, residual.cpu() * 127.5, box).save(buffer, "JPEG", quality=quality)
    work = working_copy(Image.open(buffer), ((right - left) * cell, (bottom - top) * cell))
    scores = cell_map(decoder, work.to(residual.device, residual.dtype))
    return wrong_message_bits(scores, grid[top:bottom, left:right], T, g)


def rung(raw: torch.Tensor, shaping: Shaping | None, amplitude: float, rgb: Image.Image,
         maps: dict | None = None) -> torch.Tensor:
    """The residual one rung gives: ``raw`` shaped, scaled to rms ``amplitude`` and capped (by the visibility map
    of ``rgb`` plus the shaped residual; ``maps`` keeps the maps, by knee and chroma gain, for the next cap)."""
    residual = shape(raw, shaping)
    residual = residual * (amplitude / residual.pow(2).mean().sqrt().clamp_min(1e-12))
    if shaping is None or shaping.cap is None:
        return residual
    maps = {} if maps is None else maps
    key = (shaping.knee, shaping.chroma)
    if key not in maps:
        maps[key] = residual_visibility(rgb, residual)
    return residual * cap_gain(maps[key], shaping.cap, shaping.spread)


@torch.no_grad()
def choose_shaping(decoder, raw: torch.Tensor, grid: torch.Tensor, T: int, g: int,
                   ladder: Sequence[Shaping | None], amplitude: float, rgb: Image.Image) -> torch.Tensor:
    """The residual (3, h, w) of the least visible shaping of ``ladder`` found to read after the check, scaled
    to rms ``amplitude`` ([-1, 1] units: the target PSNR) and capped; else the uncapped one tried that read with
    the fewest wrong bits.

    ``raw`` is the encoder's residual on the working copy of the photo ``rgb``, ``grid`` (rows, cols) the
    tiled cells of message and pilot."""
    maps = {}
    if len(ladder) == 1:  # nothing to choose
        return rung(raw, ladder[0], amplitude, rgb, maps)
    tried = {}  # rung -> (wrong bits, residual, passes)
    low, high = 0, len(ladder) - 1  # the first passing rung is in [low, high], if any
    while low <= high:
        middle = low if not tried else (low + high) // 2  # the least visible rung first, then bisection
        shaping = ladder[middle]
        residual = rung(raw, shaping, amplitude, rgb, maps)
        capped = shaping is not None and shaping.cap is not None
        errors = wrong_bits_after_jpeg(decoder, rgb, residual, grid, T, g,
                                       CAPPED_CHECK_QUALITY if capped else CHECK_QUALITY)
        passes = errors <= (CAPPED_CHECK_ERRORS if capped else CHECK_ERRORS)
        tried[middle] = errors, residual, passes
        if passes:
            high = middle - 1
        else:
            low = middle + 1
    passed = [i for i, (_, _, passes) in tried.items() if passes]
    if passed:
        return tried[min(passed)][1]
    # none passed (the search then tried the last rungs): the uncapped rung tried with the fewest wrong bits (a
    # capped one was checked at another quality, so its count does not compare)
    uncapped = [i for i in tried if ladder[i] is None or ladder[i].cap is None] or list(tried)
    return tried[min(uncapped, key=lambda i: tried[i][0])][1]
