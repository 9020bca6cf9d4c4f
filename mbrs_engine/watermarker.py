"""The watermarking API: :class:`Watermarker` embeds and reads bits or text in PIL images of any size.

>>> from mbrs_engine import Watermarker
>>> wm = Watermarker.from_pretrained()               # or a name from `mbrs models`, or a path
>>> marked = wm.embed(img, "© Jane Doe")
>>> wm.decode(marked).message

Layouts.  By default a photo at least two tiles large (272 px on its shorter
side for the default model) is embedded in *tiles*: the message and a pilot
repeated over a working copy of the photo, readable from a crop anywhere, a
rotation or a mirror (:mod:`mbrs_engine.tiling`), its
speckles softened at the same energy and turned down where it would show
(:mod:`mbrs_engine.perceptual`; how far is checked per photo,
:mod:`mbrs_engine.shaping_check`); where it needs all its energy and crops or
turns of the photo still read it with little margin (dense textures), it is
refined against them (:mod:`mbrs_engine.tile_refinement`).
Smaller images, and any image with ``tiled=False``, take the *whole-frame*
layout described next.

Native size (the model's H x H): the encoder runs on the image itself, as in
the paper.  Any other size: the cover is resized (antialiased) to H x H, the
encoder gives a residual ``encoded - cover`` there, the residual is scaled by
``strength``, upscaled (bicubic) to the full size and added to the full-size
image, which is then rounded to 8 bit (:mod:`mbrs_engine.resampling`).  By
default that residual is then refined for the image against the decoder
under attacks, at a fixed PSNR (:mod:`mbrs_engine.refinement`).  Decoding
resizes (antialiased) to H x H and runs the decoder.  See ``docs/watermarking.md``.

:meth:`Watermarker.decode` reads both layouts and searches: the full frame,
the tiles in place (and turned back by quarter turns and mirrored back:
:mod:`mbrs_engine.orientations`), the whole-frame crops of
:class:`~mbrs_engine.frames.SearchConfig` (the image padded back to a presumed
original frame), then the tile search over lattices, phases and rolls.  It
keeps the first hypothesis whose payload passes the test; the p-value is
multiplied by the number of hypotheses it may try (Bonferroni), so the
false-positive bound still holds.
"""
from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import borders, orientations, payload, tiling
from .frames import (CENTRAL_SEARCH, CORNER_SEARCH, SEARCH_OVERSAMPLING, Frame, SearchConfig,  # noqa: F401
                     decoder_input, erased_cells, frame_view)
from .imageio import join_alpha, split_alpha
from .metrics import image_psnr, psnr_to_mse, residual_scale_for_psnr
from .nets import NetworkConfig
from .nets.folding import fold_batchnorm
from .parallel import Ahead
from .payload import DEFAULT_THRESHOLD, DecodeResult
from .perceptual import LADDER, Shaping
from .shaping_check import choose_shaping
from .tile_refinement import TileRefineConfig, refined_where_needed
from .pixels import pil_to_tensor
from .refinement import Progress, RefineConfig, refine_residual, render_at_psnr
from .resampling import add_residual, to_model_size

MAX_STRENGTH = 10.0
#: The smallest shorter side (pixels) any model embeds into; a model also needs half its own size
#: (:attr:`Watermarker.min_side`: 64 px for the 128-pixel default model).
MIN_SIDE = 16


class ImageTooSmallError(ValueError):
    """An image too small to carry a watermark of this model."""


# ---------------------------------------------------------------- the API


def _check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number, got {strength!r}")
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise ValueError(f"strength must be between 0 and {MAX_STRENGTH:g}, got {strength}")
    return float(strength)


def _check_bits(bits, length: int) -> torch.Tensor:
    arr = np.asarray(bits)
    if arr.ndim != 1 or arr.size != length:
        raise ValueError(f"expected {length} bits, got an array of shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
        raise ValueError("bits must be 0 or 1")
    return torch.from_numpy(arr.astype(np.float32)).unsqueeze(0)


def _check_image(img) -> Image.Image:
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(img).__name__}")
    if min(img.size) < 1:
        raise ValueError(f"the image is empty ({img.size[0]}x{img.size[1]})")
    return img


class Watermarker:
    """Embed and read watermarks with one MBRS encoder/decoder pair.

    ``Watermarker(encoder, decoder, config)`` wraps networks in memory (for
    example a freshly trained model); :meth:`from_pretrained` loads a model
    file.  The networks run in eval mode under ``torch.inference_mode``, as copies with their BatchNorms
    folded into the convolutions (:mod:`mbrs_engine.nets.folding`); :attr:`networks` keeps them as given.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, config: NetworkConfig | None = None, *,
                 name: str = "model", metadata: dict | None = None, search: SearchConfig | None = None,
                 device: str | torch.device = "cpu", residual_psnr: float | None = None,
                 embed_psnr: float | None = None, refine: RefineConfig | None = RefineConfig(),
                 tiled: bool = True, shaping: Shaping | None | Sequence[Shaping | None] = LADDER,
                 tile_refine: TileRefineConfig | None = TileRefineConfig()):
        self.config = config or getattr(encoder, "config", None)
        if not isinstance(self.config, NetworkConfig):
            raise ValueError("pass the model's NetworkConfig (the encoder does not carry one)")
        self.device = torch.device(device)
        #: the networks as given (with their BatchNorms): what :meth:`save` writes
        self.networks = (encoder, decoder)
        # the networks that run: BatchNorm folded into the convolutions (about 1.2x faster) and channels-last
        # weights (about 1.3x faster convolutions on a CPU, oneDNN), equal to float rounding
        self.encoder = fold_batchnorm(encoder).to(self.device, memory_format=torch.channels_last)
        self.decoder = fold_batchnorm(decoder).to(self.device, memory_format=torch.channels_last)
        self.name = name
        self.metadata = metadata or {}
        self.search = search or SearchConfig()
        self.residual_psnr = residual_psnr
        self.embed_psnr = embed_psnr
        self.refine = refine
        #: how tiles that read with little margin are refined (:mod:`mbrs_engine.tile_refinement`; None: never)
        self.tile_refine = tile_refine
        self.tiled = tiled and tiling.supports(self.config)
        #: shapings strongest first (:mod:`mbrs_engine.perceptual`); tiles take the first that passes the check
        self.shapings = tuple(shaping) if isinstance(shaping, (tuple, list)) else (shaping,)
        self._pilot_template = None

    @classmethod
    def from_pretrained(cls, name_or_path=None, *, search: SearchConfig | None = None,
                        device: str | torch.device = "cpu", refine: RefineConfig | None = RefineConfig(),
                        tiled: bool = True, shaping: Shaping | None | Sequence[Shaping | None] = LADDER,
                        tile_refine: TileRefineConfig | None = TileRefineConfig()) -> "Watermarker":
        """Load a shipped or user model by name, a model file by path, or the default model (None)."""
        from .model_files import load_model

        loaded = load_model(name_or_path)
        meta = {"description": loaded.metadata.description, "training_noise": loaded.metadata.training_noise,
                "training_data": loaded.metadata.training_data, "metrics": loaded.metadata.metrics,
                "source": loaded.source, "path": str(loaded.files.json_path)}
        return cls(loaded.encoder, loaded.decoder, loaded.config, name=loaded.metadata.name, metadata=meta,
                   search=search, device=device, residual_psnr=loaded.metadata.residual_psnr,
                   embed_psnr=loaded.metadata.embed_psnr, refine=refine, tiled=tiled,
                   shaping=shaping, tile_refine=tile_refine)

    def save(self, path, metadata=None, *, fp16: bool = False):
        """Write this model's files (see :func:`mbrs_engine.model_files.save_model`)."""
        from .model_files import save_model

        return save_model(path, *self.networks, self.config, metadata, fp16=fp16)

    # ------------------------------------------------------------ properties

    @property
    def message_length(self) -> int:
        """L: the raw bits the model carries."""
        return self.config.message_length

    @property
    def image_size(self) -> int:
        """H: the model's native side."""
        return self.config.image_size

    @property
    def layout(self) -> payload.PayloadLayout:
        """The text payload layout (raises PayloadUnsupportedError when L is too small)."""
        return payload.layout_for(self.message_length)

    @property
    def min_side(self) -> int:
        """The smallest shorter side (pixels) this model embeds into: half its own size, at least :data:`MIN_SIDE`.

        Below it the message does not survive being squeezed back to the
        model's size (measured with the default model: no photo of 32 px read
        back unrefined, 2 of 4 at 48 px, 4 of 4 at 64 px).
        """
        return max(MIN_SIDE, self.image_size // 2)

    @property
    def capacity(self) -> int:
        """Text capacity in UTF-8 bytes (= characters for ASCII)."""
        return payload.capacity(self.message_length)

    def __repr__(self) -> str:
        return f"Watermarker({self.name!r}, H={self.image_size}, L={self.message_length})"

    # ------------------------------------------------------------ networks

    @torch.inference_mode()
    def native_residual(self, covers: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        """The watermark residual at strength 1 of a batch (N, 3, H, H) in [-1, 1], bits (N, L); float32 on the CPU.

        This is the paper's protocol (images at the model's own size).  With
        ``residual_psnr`` each residual is rescaled to that PSNR, as the model was trained.
        """
        covers = covers.to(self.device)
        residual = (self.encoder(covers, bits.to(self.device).float()) - covers).float()
        if self.residual_psnr is not None:
            residual = residual * residual_scale_for_psnr(residual, self.residual_psnr)
        return residual.cpu()

    @torch.inference_mode()
    def native_decode(self, batch: torch.Tensor) -> torch.Tensor:
        """Soft bits (N, L) in [0, 1] of a batch (N, 3, H, H) in [-1, 1]; float32 on the CPU."""
        return self.decoder(batch.to(self.device)).clamp(0.0, 1.0).float().cpu()

    def _residual(self, small: Image.Image, bits: torch.Tensor, strength: float) -> torch.Tensor:
        """strength * residual at H x H, in 8-bit levels, float32 (3, H, H) on the CPU."""
        return self.native_residual(pil_to_tensor(small), bits)[0] * (127.5 * strength)

    def erased_bits(self, frame: Frame) -> np.ndarray | None:
        """Flags of the L bits that carry nothing if the image is a crop of ``frame``; None if there are none.

        In the plain MBRS networks bit i drives cell (i // g, i % g) of the
        g x g message map that the encoder upsamples to the image, and the
        decoder reads it back from the same place: a crop takes the outer
        cells' bits with it.  Knowing which ones, before looking at them, lets
        the payload decoder ignore them (erasures) instead of fighting their
        errors.  The diffusion block spreads every bit over the whole image,
        so nothing is erased for it.
        """
        if self.config.diffusion or frame.area >= 1.0:
            return None
        erased = erased_cells(frame, self.config.grid_size).reshape(-1)
        return erased if erased.any() else None

    def _decode_batch(self, batch: torch.Tensor) -> np.ndarray:
        """Soft bits (n, L) in [0, 1] of a batch (n, 3, H, H) in [-1, 1], as numpy."""
        return self.native_decode(batch).numpy()

    # ------------------------------------------------------------ bits

    def prepare_bits(self, img: Image.Image, bits, refine: bool | RefineConfig | TileRefineConfig = True,
                     progress: Progress | None = None, tiled: bool | None = None) -> "PreparedEmbedding":
        """Run the networks (and the refinement) once for ``img`` and L bits; the result renders the marked
        image at any strength cheaply (what a strength slider needs).  :meth:`embed_bits` is
        ``prepare_bits(...).render(strength)``, so both give the same image bit for bit.

        ``refine``: True (this watermarker's :class:`RefineConfig` for the
        whole-frame layout, its :class:`TileRefineConfig` for tiles, where it has
        them), False (the encoder's residual alone, shaped) or a config of either
        kind for this call, which refines the layout it is for (see
        :mod:`mbrs_engine.refinement`, :mod:`mbrs_engine.tile_refinement`); the
        refinement runs at strength 1 and ``progress(step, steps)`` follows it (it
        may raise to cancel).  ``tiled``: lay the message out in tiles
        (:mod:`mbrs_engine.tiling`) when the image is large enough (None: this
        watermarker's ``tiled``).
        """
        rgb, alpha = split_alpha(_check_image(img))
        if min(rgb.size) < self.min_side:
            raise ImageTooSmallError(f"the image is too small to carry a watermark ({rgb.size[0]}x{rgb.size[1]}): "
                                     f"model '{self.name}' needs at least {self.min_side} pixels on the shorter side")
        message = _check_bits(bits, self.message_length)
        size = self.tile_size(rgb, tiled)
        # (whole-frame, tiles): a config refines its own layout only, True both with this watermarker's
        config, tile_config = (refine, None) if isinstance(refine, RefineConfig) else \
            (None, refine) if isinstance(refine, TileRefineConfig) else \
            (self.refine, self.tile_refine) if refine else (None, None)
        if size is not None:
            return self._prepare_tiled(rgb, alpha, message, size, tile_config, progress)
        residual = self._residual(to_model_size(rgb, self.image_size), message, 1.0)
        if config is None:
            return PreparedEmbedding(rgb, alpha, residual, None)
        target = self.strength_psnr(1.0)
        if target is None:  # keep the unrefined image's PSNR
            target = image_psnr(rgb, add_residual(rgb, residual))
            if not math.isfinite(target):  # the residual rounds away: nothing to refine
                return PreparedEmbedding(rgb, alpha, residual, None)
        residual = refine_residual(self, rgb, message, residual, target, config, progress)
        return PreparedEmbedding(rgb, alpha, residual, target)

    def tile_size(self, rgb: Image.Image, tiled: bool | None = None) -> tuple[int, int] | None:
        """The working copy's size when ``rgb`` is embedded in tiles (:mod:`mbrs_engine.tiling`); None when it
        takes the whole-frame layout (tiling off for this call or this watermarker, a diffusion model, or an
        image smaller than two tiles)."""
        use = self.tiled if tiled is None else tiled and tiling.supports(self.config)
        return tiling.working_size(*rgb.size, self.config) if use else None

    @torch.inference_mode()
    def tiled_raw(self, rgb: Image.Image, message: torch.Tensor, size, psnr: float | None = None):
        """The encoder's tiled residual (3, h, w) on the working copy of ``size`` of ``rgb``, unshaped, with the
        (rows, cols) grid of message and pilot cells it carries and the rms amplitude ([-1, 1] units) it is saved
        at: that of ``psnr``, else of :meth:`strength_psnr`, else of ``residual_psnr``, else as strong as the
        encoder gives it."""
        work = tiling.working_copy(rgb, size).to(self.device)
        raw = tiling.tiled_residual(self.encoder, work, message, self.config).to(self.device)
        psnr = psnr or self.strength_psnr(1.0) or self.residual_psnr
        # the residual's rms in [-1, 1] units (one 8-bit level = 2/255)
        amplitude = math.sqrt(psnr_to_mse(psnr)) * 2.0 / 255.0 if psnr is not None else float(raw.pow(2).mean().sqrt())
        cell = self.config.cell_pixels
        grid = tiling.message_grid(message.reshape(-1).float(), self.config, work.shape[2] // cell,
                                   work.shape[3] // cell)[0, 0]
        return raw, grid, amplitude

    def _prepare_tiled(self, rgb: Image.Image, alpha, message: torch.Tensor, size,
                       refine: TileRefineConfig | None, progress: Progress | None) -> "PreparedEmbedding":
        """The tiled residual on the working copy (:meth:`tiled_raw`), shaped (:mod:`mbrs_engine.shaping_check`
        picks how strongly), in 8-bit levels; where it keeps all its energy, refined (``refine``) when crops
        and turns read it with too many wrong bits (:mod:`mbrs_engine.tile_refinement`)."""
        with torch.inference_mode():
            raw, grid, amplitude = self.tiled_raw(rgb, message, size)
            residual = choose_shaping(self.decoder, raw, grid, tiling.cells(self.config), self.config.grid_size,
                                      self.shapings, amplitude, rgb)
        capped = float(residual.pow(2).mean().sqrt()) < 0.999 * amplitude  # a visibility cap took energy away
        if refine is not None and not capped:  # out of inference mode, for the gradient
            residual = refined_where_needed(self.decoder, rgb, residual.clone(), size, grid.clone(), self.config,
                                            refine, progress)
        return PreparedEmbedding(rgb, alpha, residual.cpu() * 127.5, self.strength_psnr(1.0), as_checked=capped)

    def prepare(self, img: Image.Image, text: str, key: str | None = None,
                refine: bool | RefineConfig | TileRefineConfig = True, progress: Progress | None = None,
                tiled: bool | None = None) -> "PreparedEmbedding":
        """:meth:`prepare_bits` for a text message (see :meth:`embed`)."""
        return self.prepare_bits(img, payload.encode_text(text, self.message_length, key), refine, progress, tiled)

    def embed_bits(self, img: Image.Image, bits, strength: float = 1.0,
                   refine: bool | RefineConfig | TileRefineConfig = True, progress: Progress | None = None,
                   tiled: bool | None = None) -> Image.Image:
        """Embed L bits; same size out, 8-bit RGB (RGBA when the input had alpha, kept untouched).

        ``refine``, ``progress`` and ``tiled`` as in :meth:`prepare_bits`.  Tiled or refined, the
        saved image has the PSNR :meth:`strength_psnr` gives (models without
        ``embed_psnr``: the PSNR of the unrefined image at strength 1, less
        20 log10(strength)), or more where a visibility cap took energy away.
        """
        strength = _check_strength(strength)
        return self.prepare_bits(img, bits, refine, progress, tiled).render(strength)

    def strength_psnr(self, strength: float) -> float | None:
        """The PSNR (dB) of a refined or tiled embedding at ``strength`` (> 0), for models with ``embed_psnr``;
        else None."""
        if self.embed_psnr is None:
            return None
        return self.embed_psnr - 20.0 * math.log10(strength)

    def decode_bits(self, img: Image.Image) -> np.ndarray:
        """L soft bits in [0, 1] (float32); bit = value > 0.5.  No synchronisation search: the image is read
        as :meth:`embed_bits` lays bits out at its size (tiles read in place, or the whole frame)."""
        rgb, _ = split_alpha(_check_image(img))
        if self.tile_size(rgb) is not None:
            return tiling.read_in_place(self.decoder, rgb, self.config).soft.astype(np.float32)
        return self._frame_bits(rgb)

    def _frame_bits(self, rgb: Image.Image) -> np.ndarray:
        """The whole frame's L soft bits."""
        return self._decode_batch(pil_to_tensor(to_model_size(rgb, self.image_size)))[0]

    # ------------------------------------------------------------ text

    def embed(self, img: Image.Image, text: str, strength: float = 1.0, key: str | None = None,
              refine: bool | RefineConfig | TileRefineConfig = True, progress: Progress | None = None,
              tiled: bool | None = None) -> Image.Image:
        """Embed a text message (UTF-8, at most :attr:`capacity` bytes; longer raises PayloadTooLongError).

        ``refine``, ``progress`` and ``tiled`` as in :meth:`embed_bits`.
        """
        return self.embed_bits(img, payload.encode_text(text, self.message_length, key), strength, refine, progress,
                               tiled)

    def decode(self, img: Image.Image, key: str | None = None, search: bool | SearchConfig = True,
               threshold: float = DEFAULT_THRESHOLD) -> DecodeResult:
        """Read a text message and test for the watermark (see :mod:`mbrs_engine.payload` for the test).

        ``search``: True (this watermarker's :class:`SearchConfig`), False (the
        full frame only) or a :class:`SearchConfig` for this call.
        """
        self.layout  # a clear error for raw-bits-only models, before any work
        rgb, _ = split_alpha(_check_image(img))
        config = search if isinstance(search, SearchConfig) else self.search
        frames = config.frames() if search else [Frame()]
        # the tiles in place as they lie, and (searching) turned back by quarter turns and mirrored back too
        turns = orientations.count(config.mirrored) if search else 1
        count = len(frames)
        in_place = tiling.in_place_tiles(*rgb.size, self.config) if self.tiled else ()
        if self.tiled:  # the tiles in place in each orientation, then every hypothesis of the tile search
            count += len(in_place) * turns + (tiling.hypotheses(*rgb.size, self.config) if search else 0)
        inside = borders.inner_box(rgb) if search else None  # a photo on a flat canvas: read the part inside too
        if inside is not None:
            count += 1 + len(self._in_place_inside(inside))
        first = None
        for soft, where, erased, soft_decoding, outlines in self._readings(rgb, frames, config, bool(search),
                                                                         turns, in_place, inside):
            result = payload.decode_payload(soft, key, hypotheses=count, threshold=threshold, erased=erased,
                                            soft_decoding=soft_decoding)
            result.frame, result.model = where, self.name
            if result.detected:
                result.outlines = outlines(*rgb.size)
                return result
            first = first or result
        return first

    def _in_place_inside(self, box: tuple[int, int, int, int]) -> tuple[int, ...]:
        """The tiles a side of each reading in place of the part of an image inside flat borders at ``box``."""
        return tiling.in_place_tiles(box[2] - box[0], box[3] - box[1], self.config) if self.tiled else ()

    def _readings(self, rgb: Image.Image, frames: list[Frame], config: SearchConfig, search: bool, turns: int,
                  in_place: tuple[int, ...], inside: tuple[int, int, int, int] | None = None):
        """(soft bits, where, erased bits, soft decoding, outlines) of every reading :meth:`decode` tests,
        likeliest and cheapest first: the full frame and the tiles in place (``in_place``: tiles a side of each
        reading; in the first ``turns`` orientations, :mod:`orientations`), then the other frames and the tile
        search.  When an image of this size is embedded in tiles, the tiles come first: in place upright and in
        the orientations the pilot's template finds likely (:func:`tiling.likely_orientations`) before the full
        frame, the search before the other orientations in place and the other frames (an edit of a tiled photo is
        likelier than a cropped whole-frame mark), which are worked out meanwhile on the cores the search leaves
        idle (:class:`parallel.Ahead`): a crop that must be searched for reads as soon as without them, and an
        unmarked photo, which needs every reading, is done sooner (at 12 MP, a median of 2.95 s against 3.50:
        docs/watermarking.md, "Decode time").  ``inside``: the part of the image inside flat borders
        (:func:`borders.inner_box`), read as an image after the full frame: its whole frame and its tiles in place.
        ``outlines(width, height)`` gives where the reading lies (:attr:`DecodeResult.outlines`)."""
        def whole(width: int, height: int) -> list:
            return [((0.0, 0.0), (float(width), 0.0), (float(width), float(height)), (0.0, float(height)))]

        def placed(where: str, outlines, box=None):
            """A reading's description and outlines; for one of the part inside flat borders at ``box``, said so
            and moved onto the image."""
            if box is None:
                return where, outlines
            left, top, right, bottom = box
            return (f"{where}, inside flat borders ({left}, {top}) to ({right}, {bottom})",
                    lambda *_: [tuple((x + left, y + top) for x, y in outline)
                                for outline in outlines(right - left, bottom - top)])

        def tiles_in_place(read: Iterable[int], box=None):
            image, counts = (rgb, in_place) if box is None else (rgb.crop(box), self._in_place_inside(box))
            for orientation in read:
                for tiles in counts:
                    reading = tiling.read_in_place(self.decoder, image, self.config, orientation, tiles)
                    agrees = reading.pilot >= tiling.IN_PLACE_PILOT
                    where, outlines = placed(reading.describe(), reading.tile_outlines, box)
                    yield reading.soft, where, None, agrees, outlines
                    if not agrees:  # no tiles where the rule puts them: reading more of them is no use
                        break

        def inside_borders():
            if inside is not None:  # the part inside read as an image: its whole frame, its tiles in place
                where, outlines = placed("full", whole, inside)
                yield self._frame_bits(rgb.crop(inside)), where, None, True, outlines
                yield from tiles_in_place([0], inside)

        # the pilot's template matched against this image (made once, when needed: the search's and the
        # orientations' in place)
        matcher = functools.cache(lambda: tiling.TemplateMatcher(rgb, self.pilot_template, self.config))
        tiled_here = self.tile_size(rgb) is not None  # how embed lays out an image of this size
        later = range(1, turns)  # the orientations read in place after the search
        if tiled_here:
            yield from tiles_in_place([0])
            likely = tiling.likely_orientations(matcher(), *rgb.size, self.config, turns) if turns > 1 else []
            later = [o for o in later if o not in likely]
            yield from tiles_in_place(likely)
        batches = self._frame_batches(rgb, frames, config)
        full, batch = next(batches)
        # the whole frame of an image of a size embed tiles is an unlikely reading: hard decisions only (soft
        # decoding of the 10 frames took 0.21 s of an unmarked 12 MP photo's 2.6 s)
        soft_frames = not tiled_here
        yield self._decode_batch(batch)[0], full[0].describe(), None, soft_frames, whole
        yield from inside_borders()
        if not tiled_here:  # (none when this watermarker does not tile: ``in_place`` is empty)
            yield from tiles_in_place(range(turns))

        def other_frames():
            for batch_frames, batch in batches:
                for frame, soft in zip(batch_frames, self._decode_batch(batch)):
                    yield soft, frame.describe(), self.erased_bits(frame), soft_frames, whole

        def tile_search():
            if self.tiled and search:
                lattices = tiling.candidate_lattices(rgb, self.config, matcher(), self.decoder)
                for readings in tiling.search(self.decoder, rgb, self.config, lattices):
                    for c in readings:
                        yield c.soft, c.describe(), None, c.pilot >= tiling.SOFT_DECODING_PILOT, c.tile_outlines

        if tiled_here:
            rest = Ahead(chain(tiles_in_place(later), other_frames()))
            try:
                yield from chain(tile_search(), rest)
            finally:
                rest.stop()
        else:
            yield from chain(other_frames(), tile_search())

    @property
    def pilot_template(self) -> torch.Tensor:
        """The tile pilot's template the tile search matches (:func:`tiling.pilot_template`), worked out once."""
        if self._pilot_template is None:
            self._pilot_template = tiling.pilot_template(self.encoder, self.config)
        return self._pilot_template

    def reads_back(self, img: Image.Image, text: str, key: str | None = None) -> bool:
        """Whether ``text`` reads back from ``img`` as it was saved: the check after every embedding.

        The saved image is the full frame, so no synchronisation search runs;
        a marked image decodes in a few hundredths of a second.
        """
        result = self.decode(img, key=key, search=False)
        return result.detected and result.message == text

    def existing_mark(self, img: Image.Image, key: str | None = None) -> DecodeResult | None:
        """The watermark of this model that ``img`` already carries (without a key, or with ``key``), read from
        the full frame; None when there is none.  Embedding over it can destroy both marks."""
        self.layout  # a clear error for raw-bits-only models
        rgb, _ = split_alpha(_check_image(img))
        readings = [(self._frame_bits(rgb), Frame().describe())]  # one network pass serves both keys
        if self.tiled:
            tiled = tiling.read_in_place(self.decoder, rgb, self.config)
            readings.append((tiled.soft, tiled.describe()))
        for soft, where in readings:
            for k in dict.fromkeys((None, key)):
                result = payload.decode_payload(soft, k, hypotheses=len(readings))
                if result.detected:
                    result.frame, result.model = where, self.name
                    return result
        return None

    def _frame_batches(self, rgb: Image.Image, frames: list[Frame], config: SearchConfig):
        """(frames, input batch) pairs: the full frame alone first (most images need nothing else), then the rest."""
        yield frames[:1], decoder_input(rgb, frames[0], self.image_size, config.fill)[None]
        if len(frames) == 1:
            return
        view = pil_to_tensor(to_model_size(rgb, SEARCH_OVERSAMPLING * self.image_size))[0]
        views = {False: view, True: torch.flip(view, dims=[-1])}  # a mirrored frame reads the image mirrored back
        for i in range(1, len(frames), config.batch_size):
            chunk = frames[i:i + config.batch_size]
            yield chunk, torch.stack([frame_view(views[f.mirrored], f, self.image_size, config.fill) for f in chunk])


class PreparedEmbedding:
    """One image's watermark, computed once: :meth:`render` gives the marked image at any strength.

    ``residual`` is the watermark at strength 1 on the model's H x H grid (on
    the working copy, for tiles), in 8-bit levels; ``target_psnr`` is the PSNR
    of the refined or tiled image at strength 1 (None: unrefined).  Unrefined, strength s adds ``s * residual`` upscaled
    to the image; refined, the refined residual is scaled so that the 8-bit
    image has ``target_psnr - 20 log10(s)`` dB (:func:`render_at_psnr`).
    ``as_checked`` (tiles a visibility cap turned down): strength s adds
    ``s * residual`` as the shaping check read it, scaled down only if that
    would fall under ``target_psnr - 20 log10(s)`` (scaled up to it, rounding to
    8 bits having dropped the capped residual's small values, the photos came
    out 0.3-2.2 dB louder: docs/watermarking.md, "Visibility").
    """

    def __init__(self, rgb: Image.Image, alpha: Image.Image | None, residual: torch.Tensor,
                 target_psnr: float | None, as_checked: bool = False):
        self.rgb, self.alpha, self.residual, self.target_psnr = rgb, alpha, residual, target_psnr
        self.as_checked = as_checked

    def psnr_target(self, strength: float) -> float | None:
        """The PSNR (dB) a refined image has at ``strength``, the least one saved as checked has (None: unrefined,
        or strength 0)."""
        if self.target_psnr is None or strength <= 0.0:
            return None
        return self.target_psnr - 20.0 * math.log10(strength)

    def render(self, strength: float = 1.0) -> Image.Image:
        """The 8-bit marked image at ``strength`` (0 to :data:`MAX_STRENGTH`), alpha re-attached."""
        strength = _check_strength(strength)
        if strength == 0.0:
            return join_alpha(self.rgb.copy(), self.alpha)
        target = self.psnr_target(strength)
        if target is None or self.as_checked:
            marked = add_residual(self.rgb, self.residual * strength)
            if target is None or image_psnr(self.rgb, marked) >= target:
                return join_alpha(marked, self.alpha)
        return join_alpha(render_at_psnr(self.rgb, self.residual * strength, target), self.alpha)


def decode_with_any(img: Image.Image, watermarkers: list[Watermarker], key: str | None = None,
                    search: bool | SearchConfig = True, threshold: float = DEFAULT_THRESHOLD) -> DecodeResult:
    """Read ``img`` with each model in turn, the first that detects a watermark wins (``result.model`` names it).

    Each model is tested at ``threshold / len(watermarkers)`` and the p-value
    reported is multiplied by the number of models (Bonferroni, like the
    search's hypotheses), so the false-positive bound ``threshold`` holds for
    the whole set: trying more models does not make false alarms likelier.
    """
    if not watermarkers:
        raise ValueError("no model to decode with")
    count, first = len(watermarkers), None
    for wm in watermarkers:
        result = wm.decode(img, key=key, search=search, threshold=threshold / count)
        result.p_value, result.threshold = min(1.0, result.p_value * count), threshold
        result.hypotheses *= count
        if result.detected:
            return result
        first = first or result
    return first


def installed_watermarkers(device: str | torch.device = "cpu") -> list[Watermarker]:
    """Every installed model that carries text (shipped and the user's, readable ones only), the default first:
    what to decode with when the model that marked an image is not known."""
    from .model_files import ModelFileError, list_models

    infos = sorted((i for i in list_models() if i.error is None and i.capacity is not None),
                   key=lambda i: not i.is_default)
    out = []
    for info in infos:
        try:
            out.append(Watermarker.from_pretrained(info.json_path, device=device))
        except ModelFileError:
            continue
    return out
