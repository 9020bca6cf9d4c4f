"""The tiled watermark: the message repeated over the photo in small tiles with a pilot, readable from a crop anywhere.

The plain MBRS networks are fully convolutional and keep the message spatial:
bit i lives in cell (i // g, i % g) of a g x g grid, each cell ``H / g``
pixels wide at the model's scale (8 px for the default model).  A *tile*
is that grid plus one pilot row and one pilot column of known bits
(:func:`pilot_bits`), ``T = g + 1`` cells a side.  Embedding lays the tile out
periodically over a *working copy* of the photo (the photo resized so that
at least :data:`TILES_ACROSS` tiles span its shorter side,
:func:`working_size`) and runs the encoder on the whole working copy at
once, so the residual follows the photo's content and has no seams; it is
then resized to the photo.  Compared with one g x g grid stretched over the
whole photo the pattern is several times finer (less visible) and any part
of the photo holding one tile holds the whole message.

Reading (:func:`read_in_place`, then :func:`search`): the decoder, run on a
working copy of any image, gives a map of cell scores.  Four unknowns
separate it from the message:

- the *period* (the tile's side in the image's pixels) and the *angle* the
  image was turned by: the embedding rule's period for this size (a resized
  photo), the sharpest peaks of the image's autocorrelation (the
  periodic residual correlates with itself one tile apart), the peak at
  which the image best matches what the pilot adds to every tile, and the
  period at which it does, upright (a crop holding a single tile;
  :func:`candidate_lattices`, :class:`TemplateMatcher`);
- the *sub-cell phase* (where the cells start, 0 to 7 working pixels each
  way): many phases at once, by splitting the decoder's batch at the stride-2
  layers (:func:`phase_maps`);
- the *roll* (which cell of the folded tile is the first): the pilot's
  circular correlation with the folded map (:func:`pilot_scores`).

The map is folded onto one tile (every tile averaged) for each phase, and the
(lattice, phase, roll) readings with the best pilot agreement are returned
for the payload test.  Every hypothesis the search may examine counts towards
the p-value (:func:`hypotheses`), so the false-positive bound holds.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import orientations
from .attacks import inner_rectangle
from .nets import NetworkConfig
from .nets.precision import inference_precision
from .pixels import pil_to_tensor
from .resampling import REDUCING_GAP

#: The fewest tiles along the shorter side of an embedded photo.
TILES_ACROSS = 2
#: The smallest tile, in multiples of the model's own scale, a large photo is tiled at (a tile must survive the
#: photo being shrunk to a quarter, as a 1080-pixel re-encode of a 12 MP photo does).
MIN_TILE_SCALE = 2.0
#: About the most pixels of the working copy the encoder runs on (its time grows with them: ~5 us a pixel).
WORK_PIXELS = 400_000
#: The smallest and largest period (image pixels) looked for after a crop or resize.
MIN_PERIOD, MAX_PERIOD_SHARE = 40, 0.9
#: The most the tiles' height and width may differ (the embedding's whole cells: up to half a cell over a side of
#: two tiles).
MAX_ASPECT_CHANGE = 0.02
#: Autocorrelation peaks tried besides the embedding rule's period.
PERIOD_PEAKS = 2
#: The autocorrelation's peaks the pilot's template rates (:meth:`TemplateMatcher.confirms`), and the z-score that
#: has the best of them searched first, one more lattice: the tiles of a turned photo or of a crop holding less
#: than two are often a lesser peak than the photo's own repeats (brick's bricks, motorcycle's spokes).  Measured
#: on the geometric suite's samples (seeds 0-2: 192 crops, rotations and crops + fit of the tiled ones; the true
#: lattice among the first 8 peaks in 174) and the first 200 clean images of the false-alarm benchmark: the true
#: lattice rated 5.0 / 7.1 / 9.6 (5th percentile / quartile / median; 152 of 174 at 6 or more), any other peak of a
#: marked image at most 6.04 (99th percentile 5.2; never above the true one); clean images' best of 8 peaks median
#: 4.8, 99th percentile 5.7, at most 6.25 (1 of 194), but for gradients (8.6-11.3: their 8-bit steps repeat, and
#: the upright scan searches them already).  16 peaks since 2026-12-07 (8 before): two turned samples' tiles were
#: the 10th and 15th (rated 7.4 and 9.1) and now read, no read of the samples' seeds 0-2 or the held-out photos
#: was lost; 300 clean images' best of 16 median 4.9, 99th percentile 5.9, at most 7.0.
CONFIRM_PEAKS, CONFIRM_Z = 16, 6.0
#: A peak the template rates this high (in any orientation) is searched before the peaks after it are rated: no clean
#: image's peak but a gradient's came near (above).  Of 352 edited marked photos (samples and held-out, seed 0, edits
#: 0-2, 4, 8-14), 245 had one, in 164 the first or second rated; in 241 it was the slot the full rating gives.
SURE_Z = 8.0
#: Periods either side of a peak's own the template rates it at (:data:`TEMPLATE_FINE_STEP` apart).
CONFIRM_STEPS = 2
#: Readings whose pilot agrees less than this get hard-decision decoding only (clean images score about
#: 0.45-0.6, marked ones 0.7-0.85); the false-positive bound counts them either way.
SOFT_DECODING_PILOT = 0.6
#: The largest rotation (degrees, either way) of the autocorrelation's peaks searched as they rank (straightening
#: a horizon).
MAX_ANGLE = 6.0
#: Rotations beyond :data:`MAX_ANGLE` up to this (degrees, either way) are looked for in a band of their own: its
#: first :data:`WIDE_PEAKS` peaks are searched only where the pilot's template confirms them (ranked with the
#: others, their wider choice of angles let the photo's own repeats displace the tiles of turns within 6 degrees).
WIDE_ANGLE, WIDE_PEAKS = 20.0, 4
#: Tiles stretched (an image resized to another aspect: a 3:2 photo to a square, 16:9 to 4:3) or sheared (a
#: perspective correction shears the tiles at the image's sides) are looked for in a band of their own, their width
#: and height repeating at lags up to MAX_STRETCH apart and turned up to MAX_SHEAR degrees apart; its first
#: WARPED_PEAKS peaks are searched only where the pilot's template confirms them, as the wide band's.
MAX_STRETCH, MAX_SHEAR, WARPED_PEAKS = 2.0, 6.0, 4
#: The pilot's agreement at a glance (:func:`probe_pilots`) at which the first lattice searched upright is searched in
#: an orientation but upright whatever the template rated (:func:`candidate_lattices`).  Measured on the held-out
#: photos marked, each in the 7 other orientations, then shrunk to a 1080-pixel long side and saved as JPEG 80 (112
#: images; before the probe 39 of them did not read), probing the autocorrelation's first peak
#: (``benchmarks/bench_orientations.py --probe``): in the true orientation 0.44-0.87, the best of the seven in 107
#: and second in 4 (the other read when the region was cut per orientation: a matter of phase); their covers so
#: edited, the best of the seven 0.41-0.60 (median 0.47, 30 of 112 at 0.5 or more: one or two lattices searched in
#: vain).  Over 1.5 tiles instead of 2 the true orientation was found in 10 of 48.
PROBE_PILOT = 0.5
#: How many orientations (the best probed) the first lattice searched upright is searched in besides.
PROBED_ORIENTATIONS = 2
#: Angles (degrees) below this are read as they are (the decoder reads cells turned by up to about 0.3°).
MIN_TURN = 0.2
#: Candidates (best pilot agreement first) handed to the payload test per image.
CANDIDATES = 8
#: The most tiles a side read in place (a larger image is read in its centre).
MAX_TILES_READ = 4
#: Tiles a side read in place first: a marked photo as saved reads from its top-left 2 x 2 tiles in a quarter
#: of the work (and the resizing) of 4 x 4; only when that does not read, and its pilot agrees, are 4 x 4 read.
FIRST_TILES_READ = 2
#: A reading in place whose pilot agrees less than this is not read again over more tiles and gets hard-decision
#: decoding only (measured on 20 photos, each clean and after JPEG 50: clean readings at most 0.28; marked ones
#: that read, after 13 edits that keep the tiles in place: 0.47 and more).
IN_PLACE_PILOT = 0.35
#: The odd phases of a lattice the template did not confirm are searched only when the best pilot of its even
#: phases reaches this (:func:`search`).  Measured on the geometric suite (samples and held-out photos, seed 0,
#: each lattice searched alone: 1,312, 310 of them reading): 7 reading lattices needed the odd phases, their even
#: phases' best 0.48-0.63, the two unconfirmed 0.51 and 0.59 (0.5 would have left a margin of 0.01).  Clean
#: images' lattices (the false-alarm benchmark's first 99 images, 289 lattices): the even phases' best median
#: 0.46, 90th percentile 0.52; 64 % below this (81 % below 0.5).
ODD_PHASES_PILOT = 0.48
#: Tiles a side the phase and roll search looks at (the centre of the image).
SEARCH_TILES = 2
#: The most tile outlines a reading gives (:meth:`Candidate.tile_outlines`: what the app draws).
MAX_OUTLINES = 2000
#: A turned image is turned back at this many times the working copy's resolution (not at its own: turning the
#: centre of a 12 MP photo took 0.6 s a lattice).
TURN_RESOLUTION = 2.0
#: How far (pixels) a resampling box may lie outside the image by rounding alone (:func:`_resampled`).
BOX_ROUNDING = 1e-6
#: The largest side (pixels) the autocorrelation runs on; larger images are shrunk first.
AUTOCORRELATION_SIDE = 1024
#: Periods (pixels of the autocorrelation's copy) from this on are looked for in a copy shrunk by half more: their
#: cells (26 px and more, as after a small photo's crop is enlarged) are too coarse for the 5 x 5 high-pass.
COARSE_PERIOD = 450
#: The channels (weights of R, G and B) the autocorrelation looks for the tiles in: the luma, and green against red
#: and blue.  The encoder puts most of its residual in green, while a photo's three channels mostly move together,
#: so the second holds the mark with little of the photo; after JPEG it keeps less of the mark (chroma is stored
#: coarser), so each finds tiles the other misses (docs/watermarking.md, "Tiles").
AUTOCORRELATION_CHANNELS = ((0.299, 0.587, 0.114), (-0.5, 1.0, -0.5))
#: The channels the pilot's template is matched in: the autocorrelation's and red against blue.  Matched in R, G
#: and B, the photo's detail (alike in all three) swamped the mark's on textures: on the geometric suite's crops of
#: 25-50 % (48 of the samples) the template found 38 periods with a peak of 7 or more, in these channels 46.
TEMPLATE_CHANNELS = AUTOCORRELATION_CHANNELS + ((1.0, 0.0, -1.0),)
#: The pilot template's scan (:meth:`TemplateMatcher.scan`): the relative step between the periods tried, then the
#: finer step around the best ones, and how many are refined.
TEMPLATE_STEP, TEMPLATE_FINE_STEP, TEMPLATE_REFINED = 0.006, 0.0015, 3
#: Tiles a side of the image's centre folded at each period of the scan (up to all of a crop holding one or two), and
#: of the finer scan (more tiles, where the image holds them, pin the period down more finely).  Folding two instead
#: of 1.25 found the held-out photos' crops + fit (2.3-2.8 tiles across, marked with the caps' spread) at a peak of 7
#: or more in 29 of 44 draws instead of 24; the clean crops' highest peak stayed 6.6.
TEMPLATE_REACH, TEMPLATE_FINE_REACH = 2.0, 2.5
#: The smallest period (in the scan's copy) tried, in tiles of the working copy: a smaller one would have the scan
#: enlarge the image more than 4/3.
TEMPLATE_MIN_SCALE = 0.75
#: The smallest period tried, as a share of the image's shorter side: images holding up to about three tiles across.
#: From 0.45 (two tiles) the template found none of the held-out photos' crops + fit (44 draws of seeds 0-2), so they
#: rested on the autocorrelation alone, which missed one when flat areas carried less mark (docs/watermarking.md,
#: "The template over three tiles, and the caps' spread made the default").
TEMPLATE_LEAST_SHARE = 0.3
#: The template's peak (a z-score over every offset of one tile) must reach this for its period to be searched: on
#: the geometric suite's crops of the samples (three draws, 48 of each edit), clean crops of 25-50 % peaked at 6.4 at
#: most, crops + fit at 6.2, crops of 50-90 % at 7.2 (one of 48: a search in vain); marked crops of 25-50 % whose
#: period it found at 7.9-19.8 (median 13).  The scan over three tiles: clean crops 6.2 / 6.3 / 7.2 at most, the
#: held-out photos' crops 50-90 % and crops + fit 6.4 and 6.6.
TEMPLATE_Z = 7.0
#: A confirmed lattice's tiles refined by the template (:meth:`TemplateMatcher.refined`): how far either way
#: (a share of their own) and in what steps their height is tried, then their width, how many rounds of the two;
#: the refined lattice is searched too, first, when it rates this much higher.  The autocorrelation sums the whole
#: image, the template matches its centre: where the tiles' size changes across the photo (a perspective), the
#: two differ.
REFINE_HEIGHTS, REFINE_WIDTHS, REFINE_ROUNDS, REFINE_GAIN = (0.04, 0.01), (0.03, 0.005), 2, 1.0
_PILOT_SEED = b"mbrs-studio tile pilot 1"


def supports(config: NetworkConfig) -> bool:
    """Whether a model can embed tiles: the plain networks only (the diffusion block spreads bits everywhere)."""
    return not config.diffusion


def cells(config: NetworkConfig) -> int:
    """T: the tile's side in cells (the message grid and one pilot row/column)."""
    return config.grid_size + 1


def tile_pixels(config: NetworkConfig) -> int:
    """A tile's side in working pixels (136 for the default model)."""
    return cells(config) * config.cell_pixels


def pilot_bits(config: NetworkConfig) -> np.ndarray:
    """The 2T - 1 known bits of the pilot row (first T) and column (the rest), drawn once from SHA-256."""
    n = 2 * cells(config) - 1
    stream = hashlib.sha256(_PILOT_SEED + n.to_bytes(2, "big")).digest()
    while len(stream) * 8 < n:
        stream += hashlib.sha256(stream).digest()
    return np.unpackbits(np.frombuffer(stream, np.uint8))[:n]


def pilot_mask(config: NetworkConfig) -> np.ndarray:
    """(T, T) flags of the pilot cells: the last row and the last column."""
    T, g = cells(config), config.grid_size
    mask = np.zeros((T, T), bool)
    mask[g, :] = True
    mask[:g, g] = True
    return mask


def tile(bits: torch.Tensor, config: NetworkConfig) -> torch.Tensor:
    """One (T, T) tile of L bits (row by row, as the plain model lays them out) and the pilot."""
    T, g = cells(config), config.grid_size
    out = torch.zeros(T, T, dtype=torch.float32)
    out[:g, :g] = bits.reshape(g, g)
    pilot = torch.from_numpy(pilot_bits(config).astype(np.float32))
    out[g, :] = pilot[:T]
    out[:g, g] = pilot[T:]
    return out


def working_size(width: int, height: int, config: NetworkConfig) -> tuple[int, int] | None:
    """The working copy's size for embedding a ``width`` x ``height`` photo; None when it is too small to tile.

    :data:`TILES_ACROSS` tiles span the shorter side, each at least at the
    model's own scale (a photo smaller than that keeps the whole-frame layout);
    a larger photo gets more tiles (finer, and more of them in any crop), as
    many as keep each at least :data:`MIN_TILE_SCALE` times the model's scale
    and the working copy within about :data:`WORK_PIXELS` (the encoder's
    time).  Sides are whole cells, so the cells line up with the working
    copy's pixels.
    """
    short, size = min(width, height), tile_pixels(config)
    smallest = max(MIN_TILE_SCALE, math.sqrt(width * height / WORK_PIXELS))
    scale = short / (max(TILES_ACROSS, math.floor(short / (smallest * size))) * size)
    if scale < 1.0:
        return None
    cell = config.cell_pixels
    return (max(cell, round(width / scale / cell) * cell), max(cell, round(height / scale / cell) * cell))


def rule_lattice(width: int, height: int, config: NetworkConfig) -> "Lattice | None":
    """The tiles the embedding rule lays over an image of this size, upright (None: it is not tiled).  The
    working copy has whole cells, so the tiles are up to about 1.5 % taller than wide or wider than tall."""
    size = working_size(width, height, config)
    if size is None:
        return None
    return Lattice(tile_pixels(config) * width / size[0], 0.0, height * size[0] / (size[1] * width))


def working_copy(rgb: Image.Image, size: tuple[int, int], scale: tuple[float, float] | None = None,
                 origin: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """The antialiased working copy (1, 3, h, w) in [-1, 1]: the whole image resized to ``size``, or at exactly
    ``scale`` (image pixels per working pixel across and down) from the image point ``origin``: rounding the
    copy's sides would change the scale by up to half a pixel over the copy, and the decoder reads a tile only
    within about a pixel."""
    if scale is not None:
        return pil_to_tensor(_resampled(rgb, size, scale, origin))
    return pil_to_tensor(rgb if rgb.size == size else
                         rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP))


def _resampled(rgb: Image.Image, size: tuple[int, int], scale: tuple[float, float],
               origin: tuple[float, float] = (0.0, 0.0)) -> Image.Image:
    """``size`` pixels of ``rgb`` at exactly ``scale`` image pixels per pixel (across, down) from ``origin``.  A box
    edge outside the image by no more than :data:`BOX_ROUNDING` (arithmetic's rounding: a cell corner computed
    at -6e-14 px) is put on the image's edge (PIL refuses a box outside the image)."""
    box = (origin[0], origin[1], origin[0] + size[0] * scale[0], origin[1] + size[1] * scale[1])
    box = tuple(min(max(edge, 0.0), side) if -BOX_ROUNDING <= edge <= side + BOX_ROUNDING else edge
                for edge, side in zip(box, rgb.size * 2))
    return rgb.resize(size, Image.Resampling.BICUBIC, box=box, reducing_gap=REDUCING_GAP)


def message_grid(bits: torch.Tensor, config: NetworkConfig, rows: int, cols: int) -> torch.Tensor:
    """(1, 1, rows, cols) cells of the tile repeated from the top-left corner."""
    T = cells(config)
    one = tile(bits, config)
    return one.repeat(math.ceil(rows / T), math.ceil(cols / T))[:rows, :cols][None, None]


@torch.no_grad()
def tiled_residual(encoder, work: torch.Tensor, bits: torch.Tensor, config: NetworkConfig) -> torch.Tensor:
    """The encoder's residual (3, h, w), in [-1, 1] units, for the working copy ``work`` (1, 3, h, w) tiled with
    L ``bits``; h and w are whole cells.  In :func:`inference_precision`."""
    cell = config.cell_pixels
    _, _, h, w = work.shape
    grid = message_grid(bits.reshape(-1).float(), config, h // cell, w // cell).to(work.device, work.dtype)
    with inference_precision(work.device):
        encoded = encoder.encode_grid(work.contiguous(memory_format=torch.channels_last), grid, cells(config))
    return (encoded - work)[0].float().cpu()


# ---------------------------------------------------------------- reading


def shared_features(decoder, x: torch.Tensor) -> torch.Tensor:
    """The decoder's full-resolution layers (those before its first stride-2 one) on ``x`` (1, 3, h, w),
    channels-last: every phase :func:`phase_maps` reads from them shares them (37 of 83 ms of a pass on
    280 x 280).  In :func:`inference_precision`."""
    x = x.contiguous(memory_format=torch.channels_last)  # a cut-out is neither: convolutions ran 2x slower
    with inference_precision(x.device):
        for module in decoder.body[:_first_strided(decoder)]:
            x = module(x)
    return x


def phase_maps(decoder, features: torch.Tensor, skip: int = 0,
               shifts: tuple[tuple[int, int], ...] = ((0, 0),)) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Cell score maps at sub-cell phases, from :func:`shared_features` of an image x: (n, rows, cols) and the
    (dy, dx) of each.

    Map k is (nearly) the decoder's output for ``x[:, :, dy:, dx:]`` before its
    last ReLU.  Each of ``shifts`` (pixels, down and across) is read; instead
    of one pass per phase, the batch is then split into the four pixel phases
    at each stride-2 layer but the first ``skip`` ones, so the layers before a
    split are shared: ``skip=0`` gives all 64 phases of the default model in
    the time of about 16 passes (split, the deep layers keep every pixel),
    ``skip=1`` the 16 even ones in about 3.7 (measured on a 280 x 280 region:
    1.25 s and 0.29 s against 0.08 s for one pass, float32).  In :func:`inference_precision`.
    """
    reach = max(max(shift) for shift in shifts)
    _, _, h, w = features.shape
    x = torch.cat([features[:, :, a:h - reach + a, b:w - reach + b] for a, b in shifts])
    offsets = list(shifts)
    stride, seen = 1, 0
    body = decoder.body
    last_conv, last_norm, _ = body[-1]
    with inference_precision(x.device):
        for module in body[_first_strided(decoder):-1]:
            if _stride(module) == 2:
                if seen >= skip:
                    n, c, h, w = x.shape
                    hh, ww = (h - 1) // 2 * 2, (w - 1) // 2 * 2
                    x = torch.cat([x[:, :, a:a + hh, b:b + ww] for a in (0, 1) for b in (0, 1)])
                    offsets = [(dy + a * stride, dx + b * stride) for a in (0, 1) for b in (0, 1)
                               for dy, dx in offsets]
                seen += 1
                stride *= 2
            x = module(x.contiguous(memory_format=torch.channels_last))
        return last_norm(last_conv(x))[:, 0].float(), offsets


def cell_map(decoder, x: torch.Tensor) -> torch.Tensor:
    """The decoder's cell scores (rows, cols) of ``x`` (1, 3, h, w) at phase 0 (a bit reads as > 0.5)."""
    return phase_maps(decoder, shared_features(decoder, x), skip=len(_strided(decoder)))[0][0]


def _stride(module) -> int:
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    return max((c.stride[0] for c in convs), default=1)


def fold(maps: torch.Tensor, T: int) -> torch.Tensor:
    """(n, rows, cols) score maps averaged onto one (n, T, T) tile, centred on 0 (a bit reads as > 0)."""
    counts = tile_sums(torch.ones(1, *maps.shape[-2:]), T)
    return tile_sums(maps - 0.5, T) / counts.clamp(min=1.0)


def tile_sums(x: torch.Tensor, T: int) -> torch.Tensor:
    """(..., rows, cols) summed onto one (..., T, T) tile: every T x T block from the top-left corner, the last
    ones partial."""
    rows, cols = x.shape[-2:]
    padded = F.pad(x, (0, -cols % T, 0, -rows % T))
    lead, down, across = x.shape[:-2], padded.shape[-2] // T, padded.shape[-1] // T
    # the rows of blocks first (contiguous runs of T rows), then the blocks along a row: 10x faster than summing
    # both block axes of one strided view at once
    rows_summed = padded.reshape(*lead, down, T * padded.shape[-1]).sum(-2)
    return rows_summed.reshape(*lead, T, across, T).sum(-2)


def pilot_scores(folded: torch.Tensor, config: NetworkConfig) -> torch.Tensor:
    """(n, T, T): for each roll (oy, ox), the pilot's agreement with ``roll(folded, (-oy, -ox))`` in [-1, 1]."""
    scale = folded.abs().mean((1, 2), keepdim=True) + 1e-6
    clipped = (folded / scale).clamp(-1.0, 1.0)
    mask = torch.from_numpy(pilot_mask(config))
    template = torch.where(mask, tile(torch.zeros(config.message_length), config) * 2.0 - 1.0, 0.0)
    # circular cross-correlation: score[o] = sum_c clipped[(c + o) mod T] * template[c]
    spectrum = torch.fft.fft2(clipped) * torch.fft.fft2(template).conj()
    return torch.fft.ifft2(spectrum).real / float(mask.sum())


@dataclass(frozen=True)
class Lattice:
    """One guess at the tiles' geometry in an image: their width (image pixels), the angle (degrees,
    anticlockwise as :meth:`PIL.Image.Image.rotate` turns) the image was rotated by, their height over their
    width (the embedding's whole cells make it up to about 1.5 % off 1, and a decoder reading a tile only
    within about a pixel needs it; a resize to another aspect more), and the shear: how much further (degrees,
    the same way) their height is turned than their width (0: a right angle, as embedded)."""

    period: float
    angle: float = 0.0
    aspect: float = 1.0
    orientation: int = 0  # how to read the tiles (:mod:`orientations`): 0 as they lie in the image
    shear: float = 0.0
    #: whether the pilot's template confirmed them (:data:`CONFIRM_Z`): their odd phases are searched always
    confirmed: bool = field(default=False, compare=False)

    def near(self, other: "Lattice") -> bool:
        return abs(self.period - other.period) <= 0.02 * other.period and abs(self.angle - other.angle) < 0.5 \
            and abs(math.log(self.aspect / other.aspect)) <= 0.05 and abs(self.shear - other.shear) < 0.5 \
            and self.orientation == other.orientation

    @property
    def turned(self) -> bool:
        """Whether the image must be turned back (or sheared back) to read the tiles."""
        return abs(self.angle) >= MIN_TURN or abs(self.shear) >= MIN_TURN

    def oriented(self) -> "Lattice":
        """The same tiles in the image oriented by :attr:`orientation` (orientation 0): a quarter turn exchanges
        their width and height (the height's angle becomes the width's), a mirror turns the angles the other
        way."""
        o = self.orientation
        if orientations.swaps_sides(o):
            period, aspect, angle, shear = self.period * self.aspect, 1.0 / self.aspect, self.angle + self.shear, \
                -self.shear
        else:
            period, aspect, angle, shear = self.period, self.aspect, self.angle, self.shear
        sign = -1.0 if orientations.reflects(o) else 1.0
        return Lattice(period, sign * angle, aspect, shear=sign * shear, confirmed=self.confirmed)


def turn_matrix(angle: float, shear: float = 0.0) -> tuple[float, float, float, float]:
    """(a, b, c, d): the point (x, y) of an image turned back by ``angle`` and sheared back by ``shear``
    (:class:`Lattice`), relative to the point it turned about, lies at (a x + b y, c x + d y) of the image
    relative to it: the tiles' width turned anticlockwise by ``angle``, their height by ``angle + shear``."""
    across, down = math.radians(angle), math.radians(angle + shear)
    return math.cos(across), math.sin(down), -math.sin(across), math.cos(down)


def turned_back(image: Image.Image, lattice: Lattice) -> Image.Image:
    """``image`` turned back by the lattice's angle and shear about its centre (the tiles then lie square and
    upright), as large as it was; bicubic."""
    if not lattice.shear:
        return image.rotate(-lattice.angle, Image.Resampling.BICUBIC)
    a, b, c, d = turn_matrix(lattice.angle, lattice.shear)
    cx, cy = image.width / 2, image.height / 2
    return image.transform(image.size, Image.Transform.AFFINE, (a, b, cx - a * cx - b * cy, c, d, cy - c * cx - d * cy),
                           Image.Resampling.BICUBIC)


def inner_part(width: int, height: int, lattice: Lattice) -> tuple[int, int]:
    """(width, height) of the centred part of an image of this size that :func:`turned_back` leaves whole (for a
    shear, as for a turn by its angle and shear together: a little less than it could be)."""
    return inner_rectangle(width, height, abs(lattice.angle) + abs(lattice.shear))


def candidate_lattices(rgb: Image.Image, config: NetworkConfig, matcher: "TemplateMatcher | None" = None,
                       decoder=None) -> Iterator[Lattice]:
    """Tile geometries to search, each once: the autocorrelation's peak the pilot's template confirms best
    (``matcher``: the template matched against ``rgb``, when given; :meth:`TemplateMatcher.confirms`, of the first
    :data:`CONFIRM_PEAKS`, at least :data:`CONFIRM_Z`; the wide band's first :data:`WIDE_PEAKS` and the warped
    band's first :data:`WARPED_PEAKS` too) upright, and the one it confirms best turned
    or mirrored (read in that orientation, when it rates at least :data:`CONFIRM_Z`), the higher rated first, each
    after itself with the tiles' width and height the template refines (:meth:`TemplateMatcher.refined`) when
    that rates :data:`REFINE_GAIN` higher (both searched: on textures the template's best of its tries can be a
    percent off); a peak rated :data:`SURE_Z` or more in its best orientation takes the slot of that
    orientation's kind (upright, or turned and mirrored) at once, before the peaks after it are rated;
    then the autocorrelation's first :data:`PERIOD_PEAKS` peaks (the last of them the warped band's first when the
    template rates that higher, unless that peak is under the template's smallest period and rates :data:`SURE_Z`
    with the copy enlarged), then the template's own period
    (:meth:`TemplateMatcher.lattice`, when its peak stands out), then the embedding rule's period for this size,
    upright (right for an image cut along its longer side only); last, when ``decoder`` is given, the first of
    these searched upright in the :data:`PROBED_ORIENTATIONS` orientations but upright where the decoder's pilot
    agrees best at a glance (:func:`probe_pilots`, at least :data:`PROBE_PILOT`).  Those the template
    confirmed (its two slots, their refinements, its own period) come marked :attr:`Lattice.confirmed`.  A
    generator: the template's ratings and scan (0.34-0.44 s for a 12 MP photo, AMD EPYC) and the probe run only
    when the search has not read the lattices before them."""
    found: list[Lattice] = []

    def slot(rate: float, lattice: Lattice):
        """A confirmed slot's lattice (rated ``rate``), refined first when that rates higher (as above)."""
        if rate >= CONFIRM_Z:
            lattice = replace(lattice, confirmed=True)
            better, moved = matcher.refined(lattice)
            if better >= rate + REFINE_GAIN:
                yield moved, False  # not kept for the comparison: the lattice it refines comes next
            yield lattice, True

    def matched():
        if matcher is None:
            yield from ((lattice, True) for lattice in autocorrelation_peaks(rgb))
        else:
            peaks, wide, warped = autocorrelation_bands(rgb, CONFIRM_PEAKS, WIDE_PEAKS, WARPED_PEAKS, matcher.copy)
            rated, ratings, taken = peaks + wide + warped, [], set()  # taken: the kinds of slot filled at once
            for lattice in rated:
                ratings.append(matcher.confirms(lattice))
                best = int(ratings[-1].argmax())
                if ratings[-1][best] >= SURE_Z and (best > 0) not in taken:
                    taken.add(best > 0)
                    yield from slot(float(ratings[-1][best]), replace(lattice, orientation=best))
            confirmed, unconfirmed = [], peaks[:PERIOD_PEAKS]
            if rated:
                rates = torch.stack(ratings)
                if False not in taken:
                    upright = int(rates[:, 0].argmax())
                    confirmed.append((float(rates[upright, 0]), rated[upright]))
                if True not in taken:
                    # any orientation but upright (the template half matches its mirror image: the pilot column
                    # mirrored left to right is the same column, so upright may rate about as high)
                    i, o = divmod(int(rates[:, 1:].argmax()), rates.shape[1] - 1)
                    confirmed.append((float(rates[i, o + 1]), replace(rated[i], orientation=o + 1)))
                # the last slot searched unconfirmed: the narrow band's peak or the warped band's first, whichever
                # the template rates higher upright (tiles stretched by a crop's resize repeat once at their width
                # and again at their height; the narrow band finds them as square tiles of one or the other); a
                # narrow peak under the template's smallest period (rated 0) keeps its slot when the template,
                # enlarging the copy, rates it SURE_Z or more (a photo shrunk to a quarter: its tiles 10.2;
                # the samples' peaks so rated on the geometric suite 3.9-7.2)
                if warped and len(unconfirmed) < PERIOD_PEAKS:
                    unconfirmed = unconfirmed + warped[:1]
                elif warped:
                    narrow = rates[PERIOD_PEAKS - 1, 0]
                    if rates[len(peaks) + len(wide), 0] > narrow and not (
                            narrow == 0.0 and matcher.confirms(unconfirmed[-1], small=True)[0] >= SURE_Z):
                        unconfirmed = unconfirmed[:-1] + warped[:1]
            for rate, lattice in sorted(confirmed, key=lambda c: -c[0]):
                yield from slot(rate, lattice)
            yield from ((lattice, True) for lattice in unconfirmed)
            yield matcher.lattice(), True
        yield rule_lattice(*rgb.size, config), True
        first = next((f for f in found if f.orientation == 0), None)
        if decoder is not None and first is not None:
            # the first lattice searched upright, in the orientations the decoder's pilot agrees best at a glance (a
            # mirrored photo shrunk and re-encoded: the template rates its tiles in no orientation, a texture's in a
            # wrong one, or them upright: a mirrored pilot column is still a column)
            pilots = probe_pilots(decoder, rgb, config, first)
            for o in sorted(pilots, key=lambda o: -pilots[o])[:PROBED_ORIENTATIONS]:
                if pilots[o] >= PROBE_PILOT:
                    yield replace(first, orientation=o, confirmed=False), True

    for lattice, kept in matched():
        if lattice is not None and not any(lattice.near(f) for f in found):
            if kept:
                found.append(lattice)
            yield lattice


def autocorrelation_peaks(rgb: Image.Image, count: int = PERIOD_PEAKS) -> list[Lattice]:
    """Where the image's fine detail best repeats: the tiles' side and the image's rotation (within
    :data:`MAX_ANGLE`), best first (:func:`autocorrelation_bands`)."""
    return autocorrelation_bands(rgb, count)[0]


def autocorrelation_bands(rgb: Image.Image, count: int, wide: int = 0, warped: int = 0,
                          copy: Image.Image | None = None) -> tuple[list[Lattice], list[Lattice], list[Lattice]]:
    """The ``count`` first peaks of the autocorrelation turned within :data:`MAX_ANGLE`, the ``wide`` first
    turned by more, up to :data:`WIDE_ANGLE`, and the ``warped`` first stretched or sheared (:data:`MAX_STRETCH`);
    ``copy``: :func:`shrunk_copy` of ``rgb`` when already made.

    Looked for in each of :data:`AUTOCORRELATION_CHANNELS` (:func:`channel_peaks`); their peaks are taken in
    turn, the first of each channel, then the second of each, and so on, each lattice once.
    """
    copies = _autocorrelation_copies(rgb, copy)
    channels = [channel_peaks(copies, weights, max(count, wide, warped)) for weights in AUTOCORRELATION_CHANNELS]
    bands = []
    for band, wanted in enumerate((count, wide, warped)):
        found: list[Lattice] = []
        for turn in zip_longest(*(peaks[band] for peaks in channels)):
            for lattice in turn:
                if lattice is not None and not any(lattice.near(f) for f in found):
                    found.append(lattice)
        bands.append(found[:wanted])
    return bands[0], bands[1], bands[2]


def _autocorrelation_copies(rgb: Image.Image, copy: Image.Image | None = None) \
        -> list[tuple[np.ndarray, int, int, tuple[float, float]]]:
    """The copies the autocorrelation runs on: (RGB as float (h, w, 3), lowest and highest lag, image pixels per
    copy pixel across and down), :func:`shrunk_copy` (``copy`` when given), and shrunk by half more for the
    lags from :data:`COARSE_PERIOD` on."""
    rgb = rgb if rgb.mode == "RGB" else rgb.convert("RGB")
    shrink = max(1.0, _copy_factor(*rgb.size))
    lo, hi = max(2, math.ceil(MIN_PERIOD / shrink)), int(min(rgb.size) / shrink * MAX_PERIOD_SHARE)
    copies = []
    for factor, low, high in ((shrink, lo, min(hi, COARSE_PERIOD)), (2 * shrink, COARSE_PERIOD / 2, hi / 2)):
        if high <= low + 2:
            continue
        if factor == shrink:
            small = copy if copy is not None else shrunk_copy(rgb)
        else:
            small = _box_shrunk(rgb, factor)
        copies.append((np.asarray(small, np.float32), math.ceil(low), int(high),
                       (rgb.width / small.width, rgb.height / small.height)))
    return copies


def shrunk_copy(rgb: Image.Image) -> Image.Image:
    """The copy of an RGB image the autocorrelation and the template run on: at most
    :data:`AUTOCORRELATION_SIDE` a side."""
    rgb = rgb if rgb.mode == "RGB" else rgb.convert("RGB")
    return _box_shrunk(rgb, _copy_factor(*rgb.size))


def _box_shrunk(rgb: Image.Image, factor: float) -> Image.Image:
    """``rgb`` shrunk by ``factor`` (box means, sides rounded: :func:`_shrunk_size`), or as it is for a factor of 1
    or less."""
    size = _shrunk_size(*rgb.size, factor)
    return rgb if size == rgb.size else rgb.resize(size, Image.Resampling.BOX)


def _shrunk_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """The size :func:`_box_shrunk` gives an image of this size."""
    if factor <= 1.0:
        return width, height
    return max(1, round(width / factor)), max(1, round(height / factor))


def _copy_factor(width: int, height: int) -> float:
    """How much an image of this size is shrunk for the autocorrelation's and the template's copy (at most
    :data:`AUTOCORRELATION_SIDE` a side; 1 or less: not shrunk)."""
    return max(width, height) / AUTOCORRELATION_SIDE


def channel_peaks(copies, weights: tuple[float, float, float], count: int = PERIOD_PEAKS) -> list[list[Lattice]]:
    """Where the fine detail of one channel (``weights`` of R, G and B) of :func:`_autocorrelation_copies` best
    repeats, best first: the ``count`` first turned within :data:`MAX_ANGLE`, those turned by more, up to
    :data:`WIDE_ANGLE`, and those stretched or sheared (each a band of its own, ranked apart).

    The channel's high-pass (less a 5 x 5 mean), softly clipped so
    that strong edges do not dominate, is correlated with itself (FFT) and
    divided by the square root of the overlap (a z-score: a repeat seen over
    a small overlap is weaker evidence).  For each lag L the best pair of lattice
    vectors rotated by the same angle, (L, dy) and (-dy, L) with |dy| up to
    tan(:data:`MAX_ANGLE`) L, is kept (and apart, the best with |dy| beyond
    that up to tan(:data:`WIDE_ANGLE`) L); the lags whose pair is a local maximum
    are returned with the angle dy / L gives, refined between neighbouring
    pixels by a parabola, and each vector's own peak near L as the tiles'
    width and height.  Stretched or sheared tiles repeat across and down at
    two lags or two angles: the vectors across and down are ranked alone and
    paired (:func:`_warped_peaks`).  Lags from :data:`COARSE_PERIOD` on are looked for the
    same way in a copy shrunk by half more, and the peaks of both are ranked
    together by their sharpness (the lags of a 512-pixel photo's crop enlarged
    to 1080 pixels: 27 of 48 such crops found among the luma's first two peaks
    without it, 36 with it; no other edit of the geometric suite lost one).
    """
    bands: list[list] = [[], [], []]
    for pixels, low, high, scale in copies:
        channel = np.ascontiguousarray(pixels @ np.asarray(weights, np.float32))
        for band, peaks in zip(bands, _lattice_peaks(channel, low, high, count, scale)):
            band += peaks
    out = []
    for found in bands:
        found.sort(key=lambda f: -f[0])
        # a pattern repeating every P also repeats every 2P and 3P: drop a multiple of a peak at least half as
        # sharp (a far weaker peak at half the tiles' period, from the photo's texture, must not drop the tiles;
        # the coarse copy can show a multiple a little sharper than the fine copy shows the tiles)
        kept = [f for sharp, f in found if not any(f.near(replace(g, period=k * g.period))
                                                   for other, g in found if other >= sharp / 2 for k in (2, 3))]
        out.append(kept[:count])
    return out


def _lattice_peaks(grey: np.ndarray, lo: int, hi: int, count: int,
                   scale: tuple[float, float]) -> list[list[tuple[float, Lattice]]]:
    """The ``count`` + 3 sharpest (sharpness, lattice) of :func:`autocorrelation_peaks` with lags from ``lo`` to
    ``hi`` of ``grey`` (h, w), whose pixels are ``scale`` image pixels across and down, in each band: turned
    within :data:`MAX_ANGLE`, turned beyond it up to :data:`WIDE_ANGLE`, and stretched or sheared (within
    :data:`MAX_ANGLE`; :func:`_warped_peaks`)."""
    x = torch.from_numpy(grey)
    h, w = x.shape
    hi = min(hi, int(min(h, w) * MAX_PERIOD_SHARE))
    if hi <= lo + 2:
        return [[], [], []]
    detail = x - F.avg_pool2d(x[None, None], 5, 1, 2, count_include_pad=False)[0, 0]
    detail = detail / (detail.abs() + 4.0)
    detail = detail - detail.mean()
    spectrum = torch.fft.rfft2(detail, s=(2 * h, 2 * w))
    auto = torch.fft.irfft2(spectrum * spectrum.conj(), s=(2 * h, 2 * w))
    # z-scores: the correlation over its overlap is the signal, its noise falls as 1 / sqrt(overlap)
    def across(lag, dy: torch.Tensor) -> torch.Tensor:  # the vector (lag, dy)
        return auto[dy % (2 * h), lag] / ((h - dy.abs()) * (w - lag)).float().sqrt()

    def down(lag, dy: torch.Tensor) -> torch.Tensor:  # the vector (-dy, lag)
        return auto[lag, (-dy) % (2 * w)] / ((h - lag) * (w - dy.abs())).float().sqrt()

    narrow, wide = math.tan(math.radians(MAX_ANGLE)), math.tan(math.radians(WIDE_ANGLE))
    # every lag and turn at once: a row per lag, a column per dy (from -reach to reach; the lag's own reach
    # within tan(WIDE_ANGLE) lag)
    lags, reach = torch.arange(lo, hi), math.ceil(wide * (hi - 1))
    dy = torch.arange(-reach, reach + 1)
    held = dy.abs() <= torch.tensor([math.ceil(wide * lag) for lag in range(lo, hi)])[:, None]
    inside = dy.abs() <= torch.tensor([math.ceil(narrow * lag) for lag in range(lo, hi)])[:, None]
    vectors = across(lags[:, None], dy[None, :]), down(lags[:, None], dy[None, :])
    pair = vectors[0] + vectors[1]

    def best(values: torch.Tensor, where: torch.Tensor) -> list[tuple]:
        """Per lag, (value, lag, dy, whole dy) of the best of ``values`` where ``where`` holds, its dy refined
        between pixels by a parabola only within the band (a neighbour outside it is another band's)."""
        k = torch.where(where, values, -torch.inf).argmax(1)
        rows = torch.arange(len(k))
        edge = (k == 0) | (k == len(dy) - 1)
        near = k.clamp(1, len(dy) - 2)
        a, b, c = (values[rows, near + i].double() for i in (-1, 0, 1))
        both = where[rows, near - 1] & where[rows, near + 1] & ~edge
        denom = a - 2.0 * b + c
        step = torch.where(both & (denom < 0), (0.5 * (a - c) / denom).clamp(-0.5, 0.5), 0.0)
        return [(float(v), lag, float(d + t), d[None]) for v, lag, d, t in
                zip(values[rows, k], range(lo, hi), dy[k], step.tolist())]

    # per lag: the best pair turned within MAX_ANGLE, beyond it, and the best vector across and down alone within it
    bands = best(pair, inside), best(pair, held & ~inside)
    alone = best(vectors[0], inside), best(vectors[1], inside)

    def refined(vector, lag: int, whole_dy: torch.Tensor) -> float:
        """One vector's own peak near ``lag`` (its highest local maximum within :data:`MAX_ASPECT_CHANGE`: a
        higher value at the window's edge is the slope of another peak, such as JPEG's blocks make every 8
        pixels), between pixels."""
        reach = math.ceil(MAX_ASPECT_CHANGE * lag) + 1
        lags = range(max(1, lag - reach), min(lag + reach + 1, h - 1, w - 1))
        values = vector(torch.tensor(lags), whole_dy)  # every lag at once
        v = values.tolist()
        tops = [k for k in range(1, len(lags) - 1) if v[k - 1] < v[k] >= v[k + 1]]
        k = max(tops, key=lambda k: v[k]) if tops else lags.index(lag)
        return lags[k] + _vertex(values, k)

    def lattice(a: tuple, d: tuple) -> Lattice:
        """The tiles whose width repeats as ``a`` and height as ``d`` ((value, lag, dy, whole dy) each), each
        vector at its own peak (the tiles can be a little taller than wide, or wider than tall), turned by their
        mean angle, or by the width's and sheared when the two differ by more than :func:`_same_turn`."""
        across_side = math.hypot(refined(across, a[1], a[3]), a[2]) * scale[0]
        down_side = math.hypot(refined(down, d[1], d[3]), d[2]) * scale[1]
        if _same_turn(a, d):
            turn = (_turn(a) + _turn(d)) / 2
            return Lattice(across_side, -math.degrees(turn), down_side / across_side)
        turns = -math.degrees(_turn(a)), -math.degrees(_turn(d))
        return Lattice(across_side, turns[0], down_side / across_side, shear=turns[1] - turns[0])

    out = [[(sharp, lattice(best[i], best[i])) for sharp, i in _sharpest(best, count + 3)] for best in bands]
    return out + [_warped_peaks(alone, count + 3, lattice)]


def _sharpest(best: list[tuple], count: int) -> list[tuple[float, int]]:
    """(sharpness, index) of the ``count`` sharpest local maxima of the per-lag values ``best[i][0]``.  A repeat
    of the tiles is a sharp peak, the image's own textures make broad ones: the sharpness is the height above
    the lags a few pixels away on both sides."""
    values = [b[0] for b in best]
    peaks = [i for i in range(1, len(best) - 1) if values[i - 1] < values[i] >= values[i + 1]]
    ring = torch.tensor(values)

    def sharpness(i: int) -> float:
        around = torch.cat([ring[max(0, i - 8):max(0, i - 2)], ring[i + 3:i + 9]])
        return values[i] - (float(around.max()) if around.numel() else 0.0)

    return [(sharpness(i), i) for i in sorted(peaks, key=lambda i: -sharpness(i))[:count]]


def _turn(vector: tuple) -> float:
    """The angle (radians) of a vector (value, lag, dy, whole dy) from its lag's axis."""
    return math.atan2(vector[2], vector[1])


def _same_turn(a: tuple, d: tuple) -> bool:
    """Whether the vectors ``a`` across and ``d`` down ((value, lag, dy, whole dy)) are turned alike: within half a
    degree, or a pixel and a half at the shorter lag."""
    tolerance = max(math.radians(0.5), math.atan(1.5 / min(a[1], d[1])))
    return abs(_turn(a) - _turn(d)) <= tolerance


def _warped_peaks(alone: tuple[list, list], count: int, lattice) -> list[tuple[float, Lattice]]:
    """The ``count`` best (sharpness, lattice) of tiles stretched or sheared: a peak of the vectors across alone
    and one of those down alone (``alone``: (value, lag, dy, whole dy) per lag each), their lags at most
    :data:`MAX_STRETCH` apart and their angles at most :data:`MAX_SHEAR`, ranked by the lesser of their
    sharpness (both vectors of the tiles repeat sharply; a sharp one paired with any other would otherwise rank
    high).  A square lattice adds the two vectors at one lag and angle (:func:`_lattice_peaks`); warped tiles
    repeat across and down at two.  Pairs within :data:`MAX_ASPECT_CHANGE` and :func:`_same_turn` (square: the
    other bands') are not returned, nor pairs whose lags are multiples (1 to 3 times) of a better pair's (the
    tiles repeat every second and third tile too)."""
    pairs, downs = [], _sharpest(alone[1], count)
    for sharp_a, i in _sharpest(alone[0], count):
        for sharp_d, j in downs:
            a, d = alone[0][i], alone[1][j]
            shear = abs(_turn(a) - _turn(d))
            if max(d[1] / a[1], a[1] / d[1]) <= MAX_STRETCH and shear <= math.radians(MAX_SHEAR):
                pairs.append((min(sharp_a, sharp_d), a, d))
    pairs.sort(key=lambda p: -p[0])

    def multiple(lag: int, of: int) -> bool:
        return any(abs(lag - k * of) <= MAX_ASPECT_CHANGE * lag + 1 for k in (1, 2, 3))

    kept, out = [], []
    for sharp, a, d in pairs:
        if any(multiple(a[1], b[1]) and multiple(d[1], e[1]) and _same_turn(a, b) and _same_turn(d, e)
               for b, e in kept):
            continue
        kept.append((a, d))
        if max(d[1] / a[1], a[1] / d[1]) > 1.0 + MAX_ASPECT_CHANGE or not _same_turn(a, d):
            out.append((sharp, lattice(a, d)))
            if len(out) == count:
                break
    return out


@torch.no_grad()
def pilot_template(encoder, config: NetworkConfig) -> torch.Tensor:
    """What the pilot row and column add to every tile, as the conjugate spectrum (C, S, S // 2 + 1) of its
    high-pass in :data:`TEMPLATE_CHANNELS` (S: the tile's side in working pixels), for :class:`TemplateMatcher`.

    The encoder's residual on flat greys for a random message and for its
    complement, averaged over both and over the tiles: the message cells
    cancel (each carries a bit and its opposite), the pilot cells, the same
    in both and in every tile, remain.  It costs the embedding nothing: the
    pilot is in every tile already."""
    size, device = tile_pixels(config), next(encoder.parameters()).device
    bits = torch.from_numpy(np.random.default_rng(0).integers(0, 2, config.message_length)).float()
    total = torch.zeros(3, size, size)
    greys = (64, 128, 192)
    for grey in greys:
        work = torch.full((1, 3, 2 * size, 2 * size), grey / 127.5 - 1.0, device=device)
        for message in (bits, 1.0 - bits):
            total += tiled_residual(encoder, work, message, config).reshape(3, 2, size, 2, size).sum((1, 3))
    mean = total / (8 * len(greys))
    detail = mean - F.avg_pool2d(F.pad(mean[None], (2, 2, 2, 2), mode="circular"), 5, 1)[0]
    return torch.fft.rfft2(_in_channels(detail, TEMPLATE_CHANNELS)).conj()


def _in_channels(rgb: torch.Tensor, channels: tuple[tuple[float, float, float], ...]) -> torch.Tensor:
    """(..., 3, h, w) R, G, B as (..., C, h, w): each of ``channels`` (weights of R, G and B)."""
    return torch.einsum("cj,...jhw->...chw", torch.tensor(channels, dtype=rgb.dtype, device=rgb.device), rgb)


class TemplateMatcher:
    """The pilot's template (:func:`pilot_template`) matched against one image's centre at any period and angle.

    The image's copy (at most :data:`AUTOCORRELATION_SIDE` a side, as the
    autocorrelation's) is high-passed (less a 5 x 5 mean) in
    :data:`TEMPLATE_CHANNELS`, softly clipped so that strong edges do not
    dominate, and halved into a pyramid, once.  For a period (and an angle) the
    centre of the image is brought to the working copy's scale (turned back
    first), folded onto one tile, and correlated (FFT, every offset at once,
    its spectrum whitened) with the template; the peak's z-score over the
    offsets rates the period.  Unlike the autocorrelation it needs no second
    tile, so it finds the tiles of a crop holding only one, whose repeat the
    autocorrelation barely sees (:meth:`scan`); and it tells the tiles'
    period among the autocorrelation's peaks from the photo's own repeats
    (:meth:`confirms`).
    """

    def __init__(self, rgb: Image.Image, template: torch.Tensor, config: NetworkConfig):
        self.size = tile_pixels(config)
        self.templates = oriented_templates(template, self.size)
        self.copy = shrunk_copy(rgb)  # the autocorrelation's too (:func:`candidate_lattices`)
        self.shrink, self.short = rgb.width / self.copy.width, min(self.copy.size)  # image pixels per copy pixel
        levels = [torch.from_numpy(np.asarray(self.copy, np.float32)).permute(2, 0, 1)[None]]
        while min(levels[-1].shape[-2:]) >= 2 * self.size:  # halved copies: each try shrinks by less than 2
            levels.append(F.avg_pool2d(levels[-1], 2))
        self.pyramid = []
        for image in levels:
            detail = _in_channels(image - F.avg_pool2d(image, 5, 1, 2, count_include_pad=False), TEMPLATE_CHANNELS)
            self.pyramid.append(detail / (detail.abs() + 4.0))
        self._last_turn: tuple = (None, None)

    def _centre(self, period: float, reach: int, angle: float = 0.0, aspect: float = 1.0,
                shear: float = 0.0) -> torch.Tensor:
        """The detail of the image's centre at the working copy's scale for this period (copy pixels), turned back
        by ``angle`` and sheared back by ``shear`` (degrees, :class:`Lattice`): (C, at most reach, at most
        reach)."""
        level = min(len(self.pyramid) - 1, max(0, math.floor(math.log2(period / self.size))))
        image, scale = self._turned(level, angle, shear), period / 2 ** level / self.size  # level px per working px
        h, w = image.shape[-2:]
        ch, cw = min(h, math.ceil(reach * scale * aspect) + 1), min(w, math.ceil(reach * scale) + 1)
        top, left = (h - ch) // 2, (w - cw) // 2
        part = F.interpolate(image[..., top:top + ch, left:left + cw], mode="bilinear", antialias=scale > 1.0,
                             scale_factor=(1.0 / (scale * aspect), 1.0 / scale), align_corners=False,
                             recompute_scale_factor=False)[0]
        return part[:, :reach, :reach]

    def _turned(self, level: int, angle: float, shear: float = 0.0) -> torch.Tensor:
        """Pyramid level ``level`` turned back by ``angle`` and sheared back by ``shear`` about its centre (as
        :func:`turned_back` turns a PIL image), cut to the part the turn left whole; the level itself for angles
        under :data:`MIN_TURN`.  The last one is kept: the periods rated at one angle mostly share a level."""
        lattice = Lattice(1.0, angle, shear=shear)
        if not lattice.turned:
            return self.pyramid[level]
        if self._last_turn[0] != (level, angle, shear):
            image = self.pyramid[level]
            h, w = image.shape[-2:]
            a, b, c, d = turn_matrix(angle, shear)
            theta = torch.tensor([[[a, b * h / w, 0.0], [c * w / h, d, 0.0]]])
            grid = F.affine_grid(theta, list(image.shape), align_corners=False)
            turned = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            iw, ih = inner_part(w, h, lattice)
            top, left = (h - ih) // 2, (w - iw) // 2
            self._last_turn = ((level, angle, shear), turned[..., top:top + ih, left:left + iw])
        return self._last_turn[1]

    def rates(self, periods: list[float], tiles: float, angle: float = 0.0, aspect: float = 1.0,
              turns: Iterable[int] = (0,), shear: float = 0.0) -> torch.Tensor:
        """The template's z-score (len(periods), len(turns)) at each of ``periods`` (copy pixels), folding
        ``tiles`` tiles a side, with the image read in each of the orientations ``turns``
        (:mod:`orientations`: the fold matched against the template as that orientation sees it,
        :func:`oriented_templates`; the fold's origin does not matter, every offset is matched), the image turned
        back by ``angle`` and sheared back by ``shear`` (:class:`Lattice`)."""
        return self._rates([(period, aspect) for period in periods], tiles, angle, turns, shear)

    def _rates(self, tiles_at: list[tuple[float, float]], tiles: float, angle: float, turns: Iterable[int],
               shear: float) -> torch.Tensor:
        """:meth:`rates` at each (period, aspect) of ``tiles_at``."""
        reach, turns = math.ceil(tiles * self.size), list(turns)
        out = []
        for start in range(0, len(tiles_at), 32):  # a batch of periods at a time
            folded = torch.stack([tile_sums(self._centre(period, reach, angle, aspect, shear), self.size)
                                  for period, aspect in tiles_at[start:start + 32]])
            out.append(match_z(folded, self.templates[turns]).T)
        return torch.cat(out) if out else torch.zeros(0, len(turns))

    @torch.no_grad()
    def scan(self) -> tuple[float, float]:
        """(z-score, period in image pixels) of the period at which the image's centre, upright, best matches
        the template; (0, 0) for an image too small to hold a tile.

        Periods from :data:`TEMPLATE_LEAST_SHARE` of the image's shorter side
        (and at least :data:`TEMPLATE_MIN_SCALE` tiles of the working copy) to
        all of it, a step of :data:`TEMPLATE_STEP`, folding
        :data:`TEMPLATE_REACH` tiles a side; then :data:`TEMPLATE_FINE_STEP`
        around the best few, folding :data:`TEMPLATE_FINE_REACH`.
        """
        lo, hi = max(TEMPLATE_MIN_SCALE * self.size, TEMPLATE_LEAST_SHARE * self.short), self.short
        if hi <= lo:
            return 0.0, 0.0
        periods = np.exp(np.arange(math.log(lo), math.log(hi), TEMPLATE_STEP)).tolist()
        scores = self.rates(periods, TEMPLATE_REACH)[:, 0].tolist()
        best: list[float] = []
        for i in np.argsort(scores)[::-1]:
            if all(abs(math.log(periods[i] / p)) > 4 * TEMPLATE_STEP for p in best):
                best.append(periods[i])
            if len(best) == TEMPLATE_REFINED:
                break
        steps = np.arange(-TEMPLATE_STEP, TEMPLATE_STEP + 1e-9, TEMPLATE_FINE_STEP)
        fine = self.rates([p * math.exp(f) for p in best for f in steps], TEMPLATE_FINE_REACH)[:, 0]
        k, i = divmod(int(fine.argmax()), len(steps))
        # between the steps: the vertex of the parabola through the best and its neighbours
        offset = steps[i] + _vertex(fine[k * len(steps):(k + 1) * len(steps)], i) * TEMPLATE_FINE_STEP
        return float(fine.max()), best[k] * math.exp(offset) * self.shrink

    @torch.no_grad()
    def refined(self, lattice: Lattice) -> tuple[float, Lattice]:
        """(z-score, lattice): ``lattice`` (in its orientation, angle and shear) with the tiles' width and height
        near its own at which the template best matches the image's centre: the heights within
        :data:`REFINE_HEIGHTS` of its own, then the widths within :data:`REFINE_WIDTHS` at the best height,
        :data:`REFINE_ROUNDS` times (a coordinate ascent: the template's peak is about a percent wide either way;
        width and height apart, not period and aspect: a stretch changes one of them).  (0, ``lattice``) for a
        period the template does not rate (:meth:`_rated`)."""
        width, height, turns = lattice.period / self.shrink, lattice.period * lattice.aspect / self.shrink, \
            (lattice.orientation,)
        if not self._rated(width):
            return 0.0, lattice

        def best_of(sides: list[tuple[float, float]]) -> tuple[float, tuple[float, float]]:
            rates = self._rates([(w, h / w) for w, h in sides], TEMPLATE_FINE_REACH, lattice.angle, turns,
                                lattice.shear)[:, 0]
            return float(rates.max()), sides[int(rates.argmax())]

        def steps(reach: float, step: float) -> list[float]:
            return [1.0 + k * step for k in range(-round(reach / step), round(reach / step) + 1)]

        for _ in range(REFINE_ROUNDS):
            _, (width, height) = best_of([(width, height * f) for f in steps(*REFINE_HEIGHTS)])
            best, (width, height) = best_of([(width * f, height) for f in steps(*REFINE_WIDTHS)])
        return best, replace(lattice, period=width * self.shrink, aspect=height / width)

    def lattice(self) -> Lattice | None:
        """The tiles the upright :meth:`scan` finds; None when its peak is below :data:`TEMPLATE_Z`."""
        z, period = self.scan()
        return Lattice(period, 0.0, confirmed=True) if z >= TEMPLATE_Z else None

    def _rated(self, period: float, small: bool = False) -> bool:
        """Whether the template rates a lattice of this period (copy pixels): from :data:`TEMPLATE_MIN_SCALE` tiles
        of the working copy (as the scan; any period with ``small``) to :data:`MAX_PERIOD_SHARE` of the image's
        shorter side (the autocorrelation's longest lag: :func:`lattice_count` relies on it)."""
        return (small or TEMPLATE_MIN_SCALE * self.size <= period) and period <= MAX_PERIOD_SHARE * self.short

    @torch.no_grad()
    def confirms(self, lattice: Lattice, small: bool = False) -> torch.Tensor:
        """The template's z-score at ``lattice`` (its angle, aspect and shear; periods within
        :data:`CONFIRM_STEPS` of :data:`TEMPLATE_FINE_STEP` of its own, the best of them) in each orientation
        (:mod:`orientations`; index 0 upright); 0 for a period it does not rate (:meth:`_rated`; with ``small``
        also periods under its smallest, the copy enlarged to the working scale)."""
        turns = range(orientations.count())
        period = lattice.period / self.shrink
        if not self._rated(period, small):
            return torch.zeros(len(turns))
        steps = [period * math.exp(k * TEMPLATE_FINE_STEP) for k in range(-CONFIRM_STEPS, CONFIRM_STEPS + 1)]
        return self.rates(steps, TEMPLATE_FINE_REACH, lattice.angle, lattice.aspect, turns, lattice.shear).amax(0)


def oriented_templates(template: torch.Tensor, size: int) -> torch.Tensor:
    """The template (a conjugate spectrum, (C, size, size // 2 + 1)) as each orientation of the image sees it
    (:mod:`orientations`, (8, C, size, size // 2 + 1)): a fold oriented matches the template, over every offset,
    as the fold itself matches the template oriented back (each value at another offset, :func:`match_z`), so
    an image's fold is transformed once for all eight."""
    pattern = torch.fft.irfft2(template.conj(), s=(size, size))
    return torch.stack([torch.fft.rfft2(orientations.orient_tensor(pattern, orientations.inverse(o)))
                        for o in range(orientations.count())]).conj()


def match_z(folded: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """How well each tile of ``folded`` (B, C, S, S) matches each of ``templates`` (conjugate spectra, (T, C, S,
    S // 2 + 1)), at the best offset: the z-score (T, B) of the peak of their circular correlation over every
    offset, the tile's spectrum whitened (its channels together)."""
    spectrum = torch.fft.rfft2(folded)
    spectrum = spectrum / (spectrum.abs().square().sum(1, keepdim=True).sqrt() + 1e-6)
    # the channels summed before the inverse transform (it is linear): one per template and tile
    match = torch.fft.irfft2((spectrum[None] * templates[:, None]).sum(2), s=folded.shape[-2:]).flatten(2)
    z = (match - match.mean(2, keepdim=True)) / match.std(2, keepdim=True).clamp_min(1e-12)
    return z.amax(2)


def _vertex(values: torch.Tensor, i: int) -> float:
    """The offset (-0.5 to 0.5) of the parabola's vertex through values[i - 1 : i + 2] from i."""
    if i <= 0 or i >= len(values) - 1:
        return 0.0
    a, b, c = (float(v) for v in values[i - 1:i + 2])
    denom = a - 2.0 * b + c
    return max(-0.5, min(0.5, 0.5 * (a - c) / denom)) if denom < 0 else 0.0


def lattice_count(width: int, height: int, config: NetworkConfig) -> int:
    """The most lattices :func:`candidate_lattices` can give for an image of this size (known before looking at
    it): the autocorrelation's first :data:`PERIOD_PEAKS`; the two peaks the template confirms (upright, and
    turned or mirrored) and each refined, and the template's own period, where the template's copy
    (:class:`TemplateMatcher`) spans periods it rates (from :data:`TEMPLATE_MIN_SCALE` tiles of the working copy:
    a 102-px thumbnail has none); the rule's, where the embedding tiles this size; the first lattice searched
    upright in the :data:`PROBED_ORIENTATIONS` orientations probed."""
    short = min(_shrunk_size(width, height, _copy_factor(width, height)))  # the template copy's shorter side
    least = TEMPLATE_MIN_SCALE * tile_pixels(config)
    return PERIOD_PEAKS + 4 * (MAX_PERIOD_SHARE * short >= least) + (short > least) + \
        (rule_lattice(width, height, config) is not None) + PROBED_ORIENTATIONS


def hypotheses(width: int, height: int, config: NetworkConfig) -> int:
    """Readings behind a tiled search of a ``width`` x ``height`` image: every (lattice, phase, roll) of the most
    lattices :func:`candidate_lattices` can give (:func:`lattice_count`), each read over the search's tiles and
    over every tile around them (a bound known before looking at the image)."""
    return lattice_count(width, height, config) * config.cell_pixels ** 2 * cells(config) ** 2 * 2


@dataclass(frozen=True)
class Candidate:
    """One way of reading the tiles: soft bits (L,) in [0, 1] and where they came from."""

    soft: np.ndarray
    pilot: float  # the pilot's agreement, in [-1, 1]
    period: float  # the tile's width in image pixels
    offset: tuple[float, float]  # (x, y) image pixels of a tile's top-left corner (in the image turned back)
    angle: float = 0.0  # degrees the image was found rotated by
    pivot: tuple[float, float] = (0.0, 0.0)  # the image point it was turned back about
    orientation: int = 0  # read from the image oriented so (:mod:`orientations`); the fields above are in its pixels
    aspect: float = 1.0  # the tile's height over its width
    phase: tuple[int, int] = (0, 0)  # (dy, dx) working pixels: where the cells start in the region read
    shear: float = 0.0  # degrees the image was found sheared by (:class:`Lattice`)

    def describe(self) -> str:
        text = f"tiles of {self.period:.0f} px at ({self.offset[0]:.0f}, {self.offset[1]:.0f})"
        text += f", rotated {self.angle:+.1f}°" if abs(self.angle) >= MIN_TURN else ""
        text += f", sheared {self.shear:+.1f}°" if abs(self.shear) >= MIN_TURN else ""
        return text + (f", {orientations.name(self.orientation)}" if self.orientation else "")

    def tile_outlines(self, width: int, height: int) -> list[tuple[tuple[float, float], ...]]:
        """The tiles of this reading's lattice in a ``width`` x ``height`` image (those with a corner or their
        centre inside it, at most :data:`MAX_OUTLINES`), as their four corners in the image's pixels, from the
        tile's own top-left corner on (clockwise unless the orientation mirrors)."""
        lattice = Lattice(self.period, self.angle, self.aspect, shear=self.shear)
        a, b, c, d = turn_matrix(self.angle, self.shear) if lattice.turned else (1.0, 0.0, 0.0, 1.0)
        (cx, cy), (ox, oy), p, q = self.pivot, self.offset, self.period, self.period * self.aspect

        def to_image(x: float, y: float) -> tuple[float, float]:  # undo the turn back (PIL turns anticlockwise)
            x, y = cx + a * (x - cx) + b * (y - cy), cy + c * (x - cx) + d * (y - cy)
            return orientations.point_back(x, y, width, height, self.orientation)

        # the image, turned back, lies within this of the pivot (a shear of up to 30 degrees stretches it less)
        reach = 1.2 * math.hypot(width, height) + max(p, q)
        first_x, first_y = math.floor((cx - reach - ox) / p), math.floor((cy - reach - oy) / q)
        count_x, count_y = math.ceil((cx + reach - ox) / p) - first_x, math.ceil((cy + reach - oy) / q) - first_y
        out = []
        for j in range(first_y, first_y + count_y):
            for i in range(first_x, first_x + count_x):
                x, y = ox + i * p, oy + j * q
                corners = tuple(to_image(a, b) for a, b in ((x, y), (x + p, y), (x + p, y + q), (x, y + q)))
                centre = to_image(x + p / 2, y + q / 2)
                if any(0 < a < width and 0 < b < height for a, b in corners + (centre,)):
                    out.append(corners)
                    if len(out) == MAX_OUTLINES:
                        return out
        return out


def _region(rgb: Image.Image, lattice: Lattice, config: NetworkConfig, tiles: int):
    """The working copy at the lattice's scale cut to ``tiles`` tiles a side around its centre (and a cell), with
    its scale (image pixels per working pixel, across and down) and top-left corner (working pixels); None when
    it does not hold one whole tile.  A side shorter than that runs on by its own period (:func:`_extended`)."""
    size = tile_pixels(config)
    sx, sy = lattice.period / size, lattice.period * lattice.aspect / size
    width, height = math.floor(rgb.width / sx), math.floor(rgb.height / sy)
    if min(width, height) < size:
        return None
    limit = tiles * size + config.cell_pixels
    left, top = max(0, (width - limit) // 2), max(0, (height - limit) // 2)
    work = working_copy(rgb, (min(limit, width), min(limit, height)), (sx, sy), (left * sx, top * sy))
    return _extended(work, limit, size), (sx, sy), (left, top)


def _extended(work: torch.Tensor, limit: int, period: int) -> torch.Tensor:
    """``work`` (1, 3, h, w) holding at least one ``period`` a side, extended to ``limit`` a side by repeating its
    last period: the tiles' mark runs on seamlessly (the photo does not), so a crop holding one to two tiles has
    every cell read away from its edges, where the decoder reads poorly (a crop of exactly one tile, every cell
    once, did not read at all before: docs/watermarking.md, "A region run on by its period")."""
    for dim in (-2, -1):
        n = work.shape[dim]
        if n < limit:
            index = torch.arange(limit)
            index = torch.where(index < n, index, n - period + (index - n) % period)
            work = work.index_select(dim, index)
    return work


def _readings(maps: torch.Tensor, offsets, config: NetworkConfig, count: int, lattice: Lattice,
              scale: tuple[float, float], corner: tuple[float, float], rolls: bool = True) -> list[Candidate]:
    """The ``count`` best (phase, roll) readings of score maps (n, rows, cols) taken at ``offsets``, best
    first."""
    T, g, cell = cells(config), config.grid_size, config.cell_pixels
    folded = fold(maps.float().cpu(), T)
    scores = pilot_scores(folded, config)
    if not rolls:  # the roll is known to be 0 (the image's corner is a tile's)
        scores = scores[:, :1, :1]
    width = scores.shape[1]
    flat = scores.reshape(len(offsets), -1)
    out = []
    for index in torch.argsort(flat.reshape(-1), descending=True)[:count].tolist():
        k, rest = divmod(index, width * width)
        oy, ox = divmod(rest, width)
        dy, dx = offsets[k]
        origin = ((corner[0] + dx + ox * cell) * scale[0], (corner[1] + dy + oy * cell) * scale[1])
        out.append(Candidate(_tile_bits(folded[k], (oy, ox), g), float(flat[k, rest]), float(lattice.period),
                             origin, aspect=lattice.aspect, phase=(dy, dx)))
    return out


def _tile_bits(folded: torch.Tensor, roll: tuple[int, int], g: int) -> np.ndarray:
    """The L soft bits in [0, 1] of a folded (T, T) map whose tile starts at cell ``roll``."""
    return (torch.roll(folded, (-roll[0], -roll[1]), (0, 1))[:g, :g].reshape(-1) + 0.5).clamp(0.0, 1.0).numpy()


def _in_place_size(width: int, height: int, config: NetworkConfig) -> tuple[int, int]:
    """The working copy a reading in place reads an image of this size at (see :func:`read_in_place`)."""
    size = working_size(width, height, config)
    if size is None:
        cell, scale = config.cell_pixels, min(width, height) / (TILES_ACROSS * tile_pixels(config))
        size = tuple(max(cell, round(side / scale / cell) * cell) for side in (width, height))
    return size


def _in_place_scale(width: int, height: int, config: NetworkConfig) -> tuple[float, float]:
    """Image pixels per working pixel, across and down, of a reading in place of an image of this size
    (:func:`_in_place_size`): whole cells make the two differ by up to half a cell over the image, and a tile
    misplaced by a third of a cell no longer reads."""
    size = _in_place_size(width, height, config)
    return width / size[0], height / size[1]


def in_place_tiles(width: int, height: int, config: NetworkConfig) -> tuple[int, ...]:
    """The tiles a side each reading in place of an image of this size reads, in order: :data:`FIRST_TILES_READ`
    then :data:`MAX_TILES_READ` when the image holds more than the first on a side, else the one reading (a
    count known before looking at the image, as the false-positive bound needs)."""
    held = max(_in_place_size(width, height, config)) / tile_pixels(config)
    return (FIRST_TILES_READ, MAX_TILES_READ) if held > FIRST_TILES_READ else (MAX_TILES_READ,)


def likely_orientations(matcher: TemplateMatcher, width: int, height: int, config: NetworkConfig,
                        turns: int) -> list[int]:
    """The orientations but upright, of the first ``turns``, in which the pilot's template (``matcher``) rates the
    tiles in place (:func:`read_in_place`'s period for an image of this size) at least :data:`CONFIRM_Z` and
    higher than upright, best first: the readings in place of a mirrored or turned photo likeliest to read.  On
    the held-out photos marked, each turned or mirrored in the 7 ways, alone, after JPEG 50 and resized to half
    (336 images), the true orientation was so, and first, in 315 (the others, mostly halved, are read after the
    search)."""
    sx, sy = _in_place_scale(width, height, config)
    rates = matcher.confirms(Lattice(tile_pixels(config) * sx, 0.0, sy / sx))
    return sorted((o for o in range(1, turns) if rates[o] >= CONFIRM_Z and rates[o] > rates[0]),
                  key=lambda o: -float(rates[o]))


@torch.no_grad()
def read_in_place(decoder, rgb: Image.Image, config: NetworkConfig, orientation: int = 0,
                  tiles: int = MAX_TILES_READ) -> Candidate:
    """The reading of an image tiled as embedded (not cropped, perhaps resized): the rule's period, phase 0,
    roll 0, one decoder pass over up to ``tiles`` tiles a side from the top-left corner of the image oriented
    by ``orientation`` (:mod:`orientations`: only the part read is turned or mirrored, not the whole image).

    An image smaller than two tiles is read as a shrunk copy of a photo with
    two tiles across (the rule for photos up to about 1 MP, so any shrinking
    of those keeps the tiles where the rule puts them): its working copy is
    larger than the image."""
    seen = orientations.oriented_size(*rgb.size, orientation)
    sx, sy = _in_place_scale(*seen, config)
    # only the top-left tiles are read: cut them out before resizing (a 16 x 1200 image would otherwise make a
    # working copy of 272 x 20400)
    reach = tiles * tile_pixels(config)
    width, height = min(seen[0], round(reach * sx)), min(seen[1], round(reach * sy))
    part = orientations.part(rgb, (0, 0, width, height), orientation)
    work = working_copy(part, (max(1, math.floor(part.width / sx)), max(1, math.floor(part.height / sy))), (sx, sy))
    maps = cell_map(decoder, work.to(next(decoder.parameters()).device))[None]
    lattice = Lattice(tile_pixels(config) * sx, 0.0, sy / sx)
    found = _readings(maps, [(0, 0)], config, 1, lattice, (sx, sy), (0.0, 0.0), rolls=False)
    return replace(found[0], orientation=orientation)


def search(decoder, rgb: Image.Image, config: NetworkConfig, lattices: Iterable[Lattice],
           count: int = CANDIDATES):
    """For each lattice in turn, its ``count`` readings of ``rgb`` with the best pilot agreement over every phase
    and roll (a generator of lists: the caller stops as soon as one reads; see below for a second list).

    A rotated image is first turned back by the lattice's angle (and sheared back by its shear; a copy at
    :data:`TURN_RESOLUTION` times the working copy's resolution).  Then, over
    :data:`SEARCH_TILES` tiles a side around the centre, from one run of the
    decoder's full-resolution layers (:func:`shared_features`): the 16 even
    phases (:func:`phase_maps`, the first split skipped), every roll of each;
    then the 16 odd ones (both coordinates odd: every phase is then within a
    pixel of one read) when the template confirmed the lattice or the even
    phases' best pilot reaches :data:`ODD_PHASES_PILOT` (a clean image's
    lattices mostly do not: the phase maps of a 280 x 280 region 0.29 s for
    all 32, 0.13 s for the even 16, AMD EPYC 2026-12-07; all 64 took
    1.25 s).  When the best pilot agrees (at least
    :data:`SOFT_DECODING_PILOT`), the four phases a pixel across and down from
    it are read too (0.11 s; on the geometric suite's samples they raised the
    best pilot in 35 of 142 searches, but none below 0.6 to 0.6 or more), and
    the likeliest reading is read again over every tile of the
    centre, up to :data:`MAX_TILES_READ` a side (:func:`_read_around`), and
    tried first.  When the even phases' best pilot agrees already, they are
    handed on at once, read so (a marked photo mostly reads from them: the
    held-out photos' edits decoded in a median 1.98 s instead of 2.42 s),
    and the lattice's readings as above after them.  One or two lists a
    lattice; each reading is one of the hypotheses :func:`hypotheses` counts.
    """
    passes, phases = len(_strided(decoder)), config.cell_pixels
    for given in lattices:
        cut = _centre_cut(rgb, config, given)
        if cut is None:
            continue
        lattice, centre, here, (left, top), shrink, scale, corner, work = cut
        with torch.no_grad():
            features = shared_features(decoder, work.to(next(decoder.parameters()).device))

        @torch.no_grad()
        def with_phases(found: list[Candidate], skip: int, shifts=((0, 0),)) -> list[Candidate]:
            """The ``count`` best of ``found`` and the readings at these phases (:func:`phase_maps`)."""
            maps, offsets = phase_maps(decoder, features, skip=skip, shifts=shifts)
            return sorted(found + _readings(maps, offsets, config, count, lattice, scale, corner),
                          key=lambda c: -c.pilot)[:count]

        read_again: list = [None, None]  # the last reading read over every tile, and that reading

        def finished(found: list[Candidate]) -> list[Candidate]:
            """``found`` in the image's pixels, after its likeliest reading read again over every tile (when the
            best pilot agrees): the most confident of the readings whose pilot agrees (a phase a pixel off can
            have the better pilot, but reads its message cells less surely)."""
            if found[0].pilot >= SOFT_DECODING_PILOT:
                likeliest = max((c for c in found if c.pilot >= SOFT_DECODING_PILOT),
                                key=lambda c: float(np.abs(c.soft - 0.5).mean()))
                if read_again[0] is not likeliest:  # (the second list's likeliest is often the first's)
                    read_again[:] = likeliest, _read_around(decoder, centre, likeliest, here, config, (left, top),
                                                            shrink)
                whole = read_again[1]
                found = [whole] + found if whole is not None else found
            pivot = (left + centre.width * shrink / 2, top + centre.height * shrink / 2)  # PIL turns about the centre
            return [replace(c, angle=lattice.angle, shear=lattice.shear, pivot=pivot, orientation=given.orientation)
                    for c in found]

        found = with_phases([], 1)  # the 16 even phases
        if found[0].pilot >= SOFT_DECODING_PILOT:  # they agree: read at once (a marked photo mostly reads so)
            yield finished(found)
        # the 16 odd ones (both coordinates odd), from the same full-resolution layers
        if given.confirmed or found[0].pilot >= ODD_PHASES_PILOT:
            found = with_phases(found, 1, ((1, 1),))
        if found[0].pilot >= SOFT_DECODING_PILOT:  # the four phases a pixel across or down from the best
            best = found[0]
            found = with_phases(found, passes, tuple(((best.phase[0] + dy) % phases, (best.phase[1] + dx) % phases)
                                                    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))))
        yield finished(found)


class _CentreCut(NamedTuple):
    """What :func:`search` reads for one lattice (:func:`_centre_cut`)."""

    lattice: Lattice  # in the image oriented as it says
    centre: Image.Image  # the centre of that, with room for a turn, turned back
    here: Lattice  # the lattice in the centre's pixels
    corner_px: tuple[int, int]  # the centre's top-left corner in the oriented image
    shrink: float  # image pixels per pixel of the centre
    scale: tuple[float, float]  # image pixels per working pixel, across and down
    corner: tuple[float, float]  # the working region's top-left corner, in working pixels
    work: torch.Tensor  # the working region, SEARCH_TILES tiles a side of the centre: (1, 3, h, w)


def _centre_cut(rgb: Image.Image, config: NetworkConfig, given: Lattice) -> _CentreCut | None:
    """The centre :func:`search` reads for one lattice (:class:`_CentreCut`); None when it does not hold a whole
    tile."""
    lattice, seen = given.oriented(), orientations.oriented_size(*rgb.size, given.orientation)
    side = math.ceil((MAX_TILES_READ + 1) * lattice.period)
    left, top = max(0, (seen[0] - side) // 2), max(0, (seen[1] - side) // 2)
    centre = orientations.part(rgb, (left, top, min(seen[0], left + side), min(seen[1], top + side)),
                               given.orientation)
    shrink = 1.0
    if lattice.turned:
        centre, shrink = _shrunk(centre, lattice.period / tile_pixels(config) / TURN_RESOLUTION)
        centre = turned_back(centre, lattice)
    here = replace(lattice, period=lattice.period / shrink)
    region = _region(centre, here, config, SEARCH_TILES)
    if region is None:
        return None
    work, scale, corner = region
    scale = (scale[0] * shrink, scale[1] * shrink)
    corner = (corner[0] + left / scale[0], corner[1] + top / scale[1])
    return _CentreCut(lattice, centre, here, (left, top), shrink, scale, corner, work)


@torch.no_grad()
def probe_pilots(decoder, rgb: Image.Image, config: NetworkConfig, lattice: Lattice) -> dict[int, float]:
    """How well the pilot agrees at ``lattice`` (upright) read in each orientation but upright
    (:mod:`orientations`), at a glance: the best of the readings at the four phases a half cell apart (the phase
    maps split at the last stride-2 layer only) over :data:`SEARCH_TILES` tiles a side of the centre, its working
    region cut and resized once and oriented as a tensor; none where the image does not hold a tile.  Not
    readings the payload test sees: they only choose which orientations :func:`candidate_lattices` hands on."""
    cut = _centre_cut(rgb, config, replace(lattice, orientation=0))
    if cut is None:
        return {}
    work, skip, pilots = cut.work.to(next(decoder.parameters()).device), len(_strided(decoder)) - 1, {}
    for o in range(1, orientations.count()):
        maps, _ = phase_maps(decoder, shared_features(decoder, orientations.orient_tensor(work, o)), skip=skip)
        pilots[o] = float(pilot_scores(fold(maps.float().cpu(), cells(config)), config).max())
    return pilots


@torch.no_grad()
def _read_around(decoder, centre: Image.Image, found: Candidate, lattice: Lattice, config: NetworkConfig,
                 corner: tuple[int, int], shrink: float = 1.0) -> Candidate | None:
    """``found`` read again over up to :data:`MAX_TILES_READ` tiles a side of ``centre`` (the image turned back,
    its top-left ``corner`` pixels into it, ``shrink`` of the image's pixels to each of its own; ``lattice`` in
    its pixels) instead of :data:`SEARCH_TILES`: the same lattice, phase and roll, from the first whole cell in
    the part the turn left whole; None when that part is no larger than the search's.
    """
    size, cell, T, g = tile_pixels(config), config.cell_pixels, cells(config), config.grid_size
    sx, sy = lattice.period / size, lattice.period * lattice.aspect / size
    inner = inner_part(centre.width, centre.height, lattice) if lattice.turned else centre.size
    x_lo, y_lo = (centre.width - inner[0]) / 2, (centre.height - inner[1]) / 2
    # the first cell corner inside, and how many cells after a tile's corner it is
    first = []
    for start, low, step in (((found.offset[0] - corner[0]) / shrink, x_lo, cell * sx),
                             ((found.offset[1] - corner[1]) / shrink, y_lo, cell * sy)):
        m = math.ceil((low - start) / step)
        first.append((start + m * step, m % T))
    (x0, mx), (y0, my) = first
    limit = MAX_TILES_READ * size + cell
    width = min(limit, math.floor((x_lo + inner[0] - x0) / sx))
    height = min(limit, math.floor((y_lo + inner[1] - y0) / sy))
    if min(width, height) < size or max(width, height) <= SEARCH_TILES * size + cell:
        return None
    work = working_copy(centre, (width, height), (sx, sy), (x0, y0))
    folded = fold(cell_map(decoder, work.to(next(decoder.parameters()).device))[None].float().cpu(), T)
    roll = (-my % T, -mx % T)  # the tile's first cell in the folded map
    return replace(found, soft=_tile_bits(folded[0], roll, g), pilot=float(pilot_scores(folded, config)[0][roll]))


def _shrunk(image: Image.Image, factor: float) -> tuple[Image.Image, float]:
    """``image`` shrunk by exactly ``factor`` (its whole pixels that fit), and the factor; as it is when
    ``factor`` is 1 or less."""
    if factor <= 1.0:
        return image, 1.0
    size = (max(1, math.floor(image.width / factor)), max(1, math.floor(image.height / factor)))
    return _resampled(image, size, (factor, factor)), factor


def _strided(decoder) -> list:
    return [m for m in decoder.body[:-1] if _stride(m) == 2]


def _first_strided(decoder) -> int:
    return next(i for i, m in enumerate(decoder.body) if _stride(m) == 2)
