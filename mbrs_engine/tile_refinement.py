"""Refining a tiled watermark where it reads with little margin: the residual tuned so that crops and turns read.

On dense textures (grass, gravel) the encoder's tiled residual reads back
whole, but a crop of half the photo or a turn by a few degrees, then JPEG,
leaves 17-47 of the 256 message cells of the folded tile wrong where the
search's payload test takes about 21; every other photo measured read such
views with 0-15 (``docs/watermarking.md``, "Refining tiles that read with
little margin").  So after the shaping (:mod:`mbrs_engine.shaping_check`),
a photo whose residual kept all its energy (no visibility cap could be
afforded) gets a check, :func:`check_errors`: :data:`CHECK_VIEWS` fixed
views of it read where the tiles are.  When they read more than
:attr:`TileRefineConfig.check_errors` wrong bits on average,
:func:`refine_tiles` tunes the residual on the working copy by gradient
steps (:func:`refined_where_needed`):

* each step draws views of the marked photo (:func:`draw_view`), each
  re-saved as JPEG, really made with Pillow and libjpeg: the whole photo and
  the photo resized to a quarter, read in place; a crop of any position, size
  and aspect, and a turn by up to a few degrees (turned back), read a little
  off the tiles (up to half a working pixel, 0.3 % of the scale and 0.3°:
  what the search's estimate of the lattice is off by);
* each view's cells are folded onto one tile and a hinge loss pushes every
  folded cell (message and pilot) past a margin;
* the gradient reaches the residual through the same cells of the working
  copy plus the residual (blurred as the resize blurs them, for the photo at
  a quarter): straight-through, so the loss is the real views';
* only the residual's fine part is tuned, rescaled to its energy after every
  step; its coarse part, what a resize to a quarter keeps, stays as it was.

The refined residual is kept only where the check then reads fewer wrong
bits and the photo, as saved and at a quarter, reads in place no worse.
The decoder and decoding do not change: there is nothing to know at decode
time, and the false-positive bound is untouched.  Views of a photo larger
than :data:`VIEW_SCALE` times its working copy are made on a copy of that
size, and a view wider than :data:`VIEW_TILES` tiles is read over a window
of that many (the time of a step does not grow with the photo).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import tiling
from .attacks import inner_rectangle
from .nets import NetworkConfig
from .refinement import Progress
from .resampling import REDUCING_GAP, add_residual

#: Views of the photo are made on a copy at most this many times the working copy's side.
VIEW_SCALE = 2.0
#: The most tiles a side a view is read over (a larger view: a random window of it).
VIEW_TILES = 1.5
#: The fixed views :func:`check_errors` reads (drawn with their own seed).
CHECK_VIEWS = ("crop", "turn", "crop", "turn")
#: The sizes (shares of each side) the photo must read in place at no worse refined than unrefined: as saved, and
#: resized to a quarter (the smallest resize promised; the first refinement, without resized views, lost it on
#: grass and gravel).
GUARD_SHRINKS = (1.0, 0.25)
#: How much finer than the detail a resize to the smallest of them keeps the residual's coarse part (left as it
#: was) reaches: the antialiasing passes some finer detail too.  Grass and gravel at a quarter, refined with views
#: at a quarter in the loss, read 17 -> 21 and 10 -> 19 wrong bits with no coarse part kept, 17 -> 16 and
#: 10 -> 14 with a room of 1 (gravel's refinement refused), 17 -> 15 and 10 -> 8 with 1.5.
COARSE_ROOM = 1.5
_CHECK_SEED = 20261206


@dataclass(frozen=True)
class TileRefineConfig:
    """How :func:`refine_tiles` tunes a tiled watermark, and when (a Watermarker carries one, or None)."""

    steps: int = 12                                 # gradient steps
    learning_rate: float = 0.3                      # Adam, in multiples of the residual's rms; cosine to a tenth
    margin: float = 0.15                            # every folded cell score is pushed this far past 0
    wholes: int = 1                                 # views of the whole photo and of it at a quarter per step
    crops: int = 1                                  # crop views per step
    turns: int = 1                                  # turned views per step
    crop_area: tuple[float, float] = (0.25, 0.9)    # the share of the photo a crop keeps
    aspect_change: float = 4 / 3                    # a crop's aspect ratio is the photo's times up to this either way
    max_angle: float = 5.0                          # degrees, either way
    angle_jitter: float = 0.3                       # degrees a turned view is turned back off its angle, either way
    jpeg_quality: tuple[int, int] = (50, 95)        # every view is re-saved at a quality drawn from here
    jitter: float = 0.5                             # working pixels a view is read off its place, either way
    scale_jitter: float = 0.003                     # relative error of the scale a view is read at, either way
    check_errors: float = 8.0                       # refine when the check views read more wrong bits on average
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"tile refinement steps must be a positive whole number, got {self.steps!r}")
        if not self.learning_rate > 0.0 or not self.margin >= 0.0:
            raise ValueError("tile refinement's learning rate must be positive and its margin at least 0")
        if min(self.wholes, self.crops, self.turns) < 0 or self.wholes + self.crops + self.turns < 1:
            raise ValueError("tile refinement needs at least one view per step")
        low, high = self.crop_area
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"crop areas must satisfy 0 < low <= high <= 1, got {self.crop_area}")
        if not self.aspect_change >= 1.0 or not 0.0 <= self.max_angle <= 45.0:
            raise ValueError("the aspect change must be at least 1 and the angle within 45 degrees")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(f"JPEG qualities must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}")
        if not 0.0 <= self.jitter <= 1.0 or not 0.0 <= self.scale_jitter <= 0.05 or not 0.0 <= self.angle_jitter <= 2.0:
            raise ValueError("the jitter must be within a working pixel, the scale's within 5 % and the angle's "
                             "within 2 degrees")


@dataclass(frozen=True)
class View:
    """One attacked view, in the photo's coordinates: ``image`` shows the photo from ``origin`` (its top-left
    corner's place in the photo, pixels of the copy views are made on), the cells ``cells`` (top, left, bottom,
    right) of the working copy lie wholly inside it; ``shift`` (working pixels, across and down) and ``zoom``
    are how far off the tiles it is read; ``shrink`` is the image's pixels per pixel of the copy (across, down:
    a view of the photo resized)."""

    image: Image.Image
    origin: tuple[float, float]
    cells: tuple[int, int, int, int]
    shift: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    shrink: tuple[float, float] = (1.0, 1.0)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer).convert("RGB")


def view_copy(rgb: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The copy of the photo views are made on: the photo, or for one larger than :data:`VIEW_SCALE` times its
    working copy of ``size``, a copy of that size."""
    side = (round(size[0] * VIEW_SCALE), round(size[1] * VIEW_SCALE))
    if rgb.width <= side[0]:
        return rgb
    return rgb.resize(side, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)


def _inside(box: tuple[float, float, float, float], scale: tuple[float, float], grid: tuple[int, int],
            config: NetworkConfig, reach: float) -> tuple[int, int, int, int] | None:
    """The cells (top, left, bottom, right) of a rows x cols working copy wholly inside ``box`` (left, top,
    right, bottom; photo pixels at ``scale`` photo pixels per working pixel) with ``reach`` working pixels to
    spare; None when they hold less than a tile each way."""
    cell, T = config.cell_pixels, tiling.cells(config)
    rows, cols = grid
    left = math.ceil((box[0] / scale[0] + reach) / cell)
    top = math.ceil((box[1] / scale[1] + reach) / cell)
    right = min(cols, math.floor((box[2] / scale[0] - reach) / cell))
    bottom = min(rows, math.floor((box[3] / scale[1] - reach) / cell))
    if right - left < T or bottom - top < T:
        return None
    return top, left, bottom, right


def _window(cells: tuple[int, int, int, int], config: NetworkConfig, rng: np.random.Generator):
    """At most :data:`VIEW_TILES` tiles a side of ``cells``, at a random place."""
    most = math.floor(VIEW_TILES * tiling.cells(config))
    top, left, bottom, right = cells
    if bottom - top > most:
        top = int(rng.integers(top, bottom - most + 1))
        bottom = top + most
    if right - left > most:
        left = int(rng.integers(left, right - most + 1))
        right = left + most
    return top, left, bottom, right


def draw_view(marked: Image.Image, kind: str, scale: tuple[float, float], grid: tuple[int, int],
              config: NetworkConfig, refine: TileRefineConfig, rng: np.random.Generator) -> View | None:
    """One view of ``kind`` of the marked copy, re-saved as JPEG: "whole" and "small" (the copy as it is and
    resized to the least of :data:`GUARD_SHRINKS`, read in place), "crop" or "turn" (read a little off the
    tiles); None when it holds less than a tile."""
    width, height = marked.size
    quality = int(rng.integers(refine.jpeg_quality[0], refine.jpeg_quality[1] + 1))
    if kind == "whole":
        return View(_jpeg(marked, quality), (0, 0), _window((0, 0) + grid, config, rng))
    if kind == "small":
        share = min(GUARD_SHRINKS)
        size = (max(1, round(width * share)), max(1, round(height * share)))
        image = _jpeg(marked.resize(size, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP), quality)
        return View(image, (0, 0), _window((0, 0) + grid, config, rng), shrink=(size[0] / width, size[1] / height))
    if kind == "crop":
        area = rng.uniform(*refine.crop_area)
        aspect = math.exp(rng.uniform(-1.0, 1.0) * math.log(refine.aspect_change))
        across = min(1.0, math.sqrt(area * aspect))
        down = min(1.0, area / across)
        w, h = max(1, round(width * across)), max(1, round(height * down))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        box, image, origin = (x, y, x + w, y + h), _jpeg(marked.crop((x, y, x + w, y + h)), quality), (x, y)
    else:
        angle = rng.uniform(-refine.max_angle, refine.max_angle)
        turned = _jpeg(marked.rotate(angle, resample=Image.Resampling.BICUBIC), quality)
        back = angle + rng.uniform(-refine.angle_jitter, refine.angle_jitter)
        image, origin = turned.rotate(-back, resample=Image.Resampling.BICUBIC), (0, 0)
        w, h = inner_rectangle(width, height, angle)
        box = ((width - w) / 2, (height - h) / 2, (width + w) / 2, (height + h) / 2)
    # room for the jitter, and for the scale's at the far side
    reach = refine.jitter + 1.0 + refine.scale_jitter * max(width / scale[0], height / scale[1])
    cells = _inside(box, scale, grid, config, reach)
    if cells is None:
        return None
    shift = tuple(rng.uniform(-refine.jitter, refine.jitter, 2))
    zoom = 1.0 + rng.uniform(-refine.scale_jitter, refine.scale_jitter)
    return View(image, origin, _window(cells, config, rng), shift, zoom)


def view_input(view: View, scale: tuple[float, float], config: NetworkConfig) -> torch.Tensor:
    """What the decoder reads of a view: its cells' working pixels (1, 3, h, w), read off by the view's shift
    and zoom; ``scale`` is the copy's pixels per working pixel."""
    cell = config.cell_pixels
    top, left, bottom, right = view.cells
    size = ((right - left) * cell, (bottom - top) * cell)
    (sx, sy), (fx, fy) = scale, view.shrink
    origin = (((left * cell + view.shift[0]) * sx - view.origin[0]) * fx,
              ((top * cell + view.shift[1]) * sy - view.origin[1]) * fy)
    return tiling.working_copy(view.image, size, (sx * view.zoom * fx, sy * view.zoom * fy), origin)


def _message_cells(config: NetworkConfig, rows: int, cols: int) -> torch.Tensor:
    """(rows, cols) flags of the cells of a working copy that carry the message (the rest carry the pilot)."""
    T = tiling.cells(config)
    flags = torch.from_numpy(~tiling.pilot_mask(config))
    return flags.repeat(math.ceil(rows / T), math.ceil(cols / T))[:rows, :cols]


def _folded_truth(cells: tuple[int, int, int, int], grid: torch.Tensor, message: torch.Tensor,
                  config: NetworkConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(sign, message flags), each (T, T): what the folded tile of the working copy's ``cells`` (top, left,
    bottom, right) holding a tile each way reads as (+1 / -1), and which of its cells carry the message."""
    T = tiling.cells(config)
    top, left, bottom, right = cells
    sign = torch.sign(tiling.tile_sums(grid[None, top:bottom, left:right].float() - 0.5, T)[0])
    carries = tiling.tile_sums(message[None, top:bottom, left:right].float(), T)[0] > 0
    return sign, carries


class _Views:
    """Views of one photo marked with candidate residuals, and how the decoder reads them."""

    def __init__(self, decoder, rgb: Image.Image, size: tuple[int, int], grid: torch.Tensor,
                 config: NetworkConfig, refine: TileRefineConfig):
        self.decoder, self.config, self.refine, self.grid = decoder, config, refine, grid
        self.copy = view_copy(rgb, size)
        self.scale = (self.copy.width / size[0], self.copy.height / size[1])
        self.message = _message_cells(config, *grid.shape)
        self.work = tiling.working_copy(rgb, size)

    def draw(self, marked: Image.Image, rng: np.random.Generator, kinds: tuple[str, ...]) -> list[View]:
        """One view of each of ``kinds`` (a few tries each at one that holds a tile)."""
        views = []
        for kind in kinds:
            for _ in range(8):
                view = draw_view(marked, kind, self.scale, tuple(self.grid.shape), self.config, self.refine, rng)
                if view is not None:
                    views.append(view)
                    break
        return views

    def marked(self, residual: torch.Tensor) -> Image.Image:
        """The 8-bit copy views are made of, marked with ``residual`` (3, h, w; [-1, 1] units)."""
        return add_residual(self.copy, residual.detach().cpu() * 127.5)

    @torch.no_grad()
    def check(self, residual: torch.Tensor) -> float:
        """:func:`check_errors` of ``residual``."""
        drawn = self.draw(self.marked(residual), np.random.default_rng(_CHECK_SEED), CHECK_VIEWS)
        return float(np.mean([self.wrong_bits(view) for view in drawn])) if drawn else 0.0

    @torch.no_grad()
    def in_place(self, residual: torch.Tensor, shrink: float = 1.0) -> int:
        """:func:`in_place_errors` of ``residual``."""
        marked = self.marked(residual)
        small = marked.resize((max(1, round(marked.width * shrink)), max(1, round(marked.height * shrink))),
                              Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP) if shrink != 1.0 else marked
        return self.wrong_bits(View(small, (0, 0), (0, 0) + tuple(self.grid.shape),
                                    shrink=(small.width / marked.width, small.height / marked.height)))

    def wrong_bits(self, view: View) -> int:
        """The wrong message bits of a view's folded tile."""
        folded, sign, carries = self.folded(view)
        return int(((folded * sign <= 0) & carries).sum())

    def folded(self, view: View, residual: torch.Tensor | None = None):
        """(folded tile, sign, message flags) of a view; with ``residual`` (requiring a gradient) the folded tile
        carries its gradient through the view's cells of the working copy plus the residual (straight-through)."""
        real = view_input(view, self.scale, self.config).to(self.work.device)
        if residual is not None:
            cell = self.config.cell_pixels
            top, left, bottom, right = view.cells
            stand_in = (self.work + residual[None]).clamp(-1.0, 1.0)[:, :, top * cell:bottom * cell,
                                                                       left * cell:right * cell]
            detail = min(1.0, self.scale[0] * view.shrink[0], self.scale[1] * view.shrink[1])
            if detail < 1.0:  # the photo resized below the working copy's scale: only the coarse part is read
                stand_in = _blurred(stand_in[0], detail)[None]
            real = stand_in + (real - stand_in).detach()
        scores = tiling.cell_map(self.decoder, real)
        folded = tiling.fold(scores[None], tiling.cells(self.config))[0]
        sign, carries = _folded_truth(view.cells, self.grid, self.message, self.config)
        return folded, sign, carries


def _kinds(refine: TileRefineConfig) -> tuple[str, ...]:
    return ("whole", "small") * refine.wholes + ("crop",) * refine.crops + ("turn",) * refine.turns


@torch.no_grad()
def check_errors(decoder, rgb: Image.Image, residual: torch.Tensor, size: tuple[int, int], grid: torch.Tensor,
                 config: NetworkConfig, refine: TileRefineConfig) -> float:
    """The mean number of wrong message bits over :data:`CHECK_VIEWS` fixed views (crops and turns, as the
    refinement draws them) of ``rgb`` marked with the tiled ``residual`` (3, h, w on the working copy of
    ``size``; [-1, 1] units; ``grid`` its (rows, cols) 0/1 cells), each read where its tiles are."""
    return _Views(decoder, rgb, size, grid, config, refine).check(residual)


@torch.no_grad()
def in_place_errors(decoder, rgb: Image.Image, residual: torch.Tensor, size: tuple[int, int], grid: torch.Tensor,
                    config: NetworkConfig, shrink: float = 1.0) -> int:
    """Wrong message bits of ``rgb`` marked with the tiled ``residual`` (as :func:`check_errors`), as saved and
    resized by ``shrink``, read in place over every tile."""
    return _Views(decoder, rgb, size, grid, config, TileRefineConfig()).in_place(residual, shrink)


def refined_where_needed(decoder, rgb: Image.Image, residual: torch.Tensor, size: tuple[int, int],
                         grid: torch.Tensor, config: NetworkConfig, refine: TileRefineConfig,
                         progress: Progress | None = None) -> torch.Tensor:
    """The tiled ``residual`` (as :func:`check_errors`), refined (:func:`refine_tiles`) when its check views read
    more than ``refine.check_errors`` wrong bits on average; the refined one is kept only when its check views
    read fewer and the photo, as saved and resized by each of :data:`GUARD_SHRINKS`, no more in place (else the
    residual as it was)."""
    views = _Views(decoder, rgb, size, grid, config, refine)  # one copy of the photo for every reading
    before = views.check(residual)
    if before <= refine.check_errors:
        return residual
    refined = refine_tiles(decoder, rgb, residual, size, grid, config, refine, progress)
    if views.check(refined) >= before:
        return residual
    if any(views.in_place(refined, shrink) > views.in_place(residual, shrink) for shrink in GUARD_SHRINKS):
        return residual
    return refined


def _blurred(residual: torch.Tensor, share: float) -> torch.Tensor:
    """``residual`` (3, h, w) shrunk to ``share`` of its sides (antialiased) and enlarged back: what of it a
    resize to that share keeps."""
    _, h, w = residual.shape
    small = F.interpolate(residual[None], size=(max(1, round(h * share)), max(1, round(w * share))),
                          mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)[0]


def refine_tiles(decoder, rgb: Image.Image, residual: torch.Tensor, size: tuple[int, int], grid: torch.Tensor,
                 config: NetworkConfig, refine: TileRefineConfig, progress: Progress | None = None) -> torch.Tensor:
    """The tiled ``residual`` (3, h, w on the working copy of ``size`` of ``rgb``; [-1, 1] units; ``grid`` its
    (rows, cols) 0/1 cells) tuned so that views of the marked photo read: its fine part at its energy, its coarse
    part (what a resize to the least of :data:`GUARD_SHRINKS` keeps) as it was.
    ``progress(step, steps)`` follows it (it may raise to cancel)."""
    views = _Views(decoder, rgb, size, grid, config, refine)
    # the coarse part, what a resize to the smallest share keeps (with room: the antialiasing passes some finer
    # detail too), stays as it was: what the unrefined mark read at that size it still reads (none when the
    # working copy's pixels survive the resize)
    kept = min(rgb.width / size[0], rgb.height / size[1]) * min(GUARD_SHRINKS) * COARSE_ROOM
    coarse = _blurred(residual.detach().float(), kept) if kept < 1.0 else torch.zeros_like(residual)
    fine = residual.detach().float() - coarse
    rms = fine.pow(2).mean().sqrt()
    param = fine.clone().requires_grad_(True)
    rate = refine.learning_rate * float(rms)
    optimizer = torch.optim.Adam([param], lr=rate)
    rng = np.random.default_rng(refine.seed)

    def at_energy(x: torch.Tensor) -> torch.Tensor:
        return coarse + x * (rms / x.pow(2).mean().sqrt().clamp_min(1e-12))

    for step in range(refine.steps):
        if progress:
            progress(step, refine.steps)
        current = at_energy(param)
        losses = []
        for view in views.draw(views.marked(current), rng, _kinds(refine)):
            folded, sign, _ = views.folded(view, current)
            losses.append(torch.relu(refine.margin - sign * folded).mean())
        if not losses:  # nothing holds a tile
            break
        loss = torch.stack(losses).mean()
        (param.grad,) = torch.autograd.grad(loss, param)
        for group in optimizer.param_groups:
            group["lr"] = rate * (0.1 + 0.45 * (1.0 + math.cos(math.pi * step / refine.steps)))
        optimizer.step()
    if progress:
        progress(refine.steps, refine.steps)
    return at_energy(param).detach()
