"""The watermarking API: :class:`Watermarker` embeds and reads bits or text in PIL images of any size.

>>> from mbrs_engine import Watermarker
>>> wm = Watermarker.from_pretrained()               # or a name from `mbrs models`, or a path
>>> marked = wm.embed(img, "© Jane Doe")
>>> wm.decode(marked).message

Native size (the model's H x H): the encoder runs on the image itself, as in
the paper.  Any other size: the cover is resized (antialiased) to H x H, the
encoder gives a residual ``encoded - cover`` there, the residual is scaled by
``strength``, upscaled (bicubic) to the full size and added to the full-size
image, which is then rounded to 8 bit.  Decoding resizes (antialiased) to
H x H and runs the decoder.  See ``docs/watermarking.md``.

:meth:`Watermarker.decode` can also search for the frame of a cropped image:
it tries the image as the full original first, then as a crop of an original
with a smaller area (see :class:`SearchConfig`), padding it back to the
presumed original frame before resizing, and keeps the first hypothesis whose
payload passes the test; the p-value is multiplied by the number of hypotheses
(Bonferroni), so the false-positive bound still holds.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageChops
from torch import nn

from . import payload
from .imageio import join_alpha, split_alpha
from .metrics import residual_scale_for_psnr
from .nets import NetworkConfig
from .payload import DEFAULT_THRESHOLD, DecodeResult
from .pixels import pil_to_tensor

#: PIL's ``reducing_gap``: shrink by an integer factor with a box filter first, then bicubic (fast, antialiased).
REDUCING_GAP = 3.0
#: The largest residual (8-bit levels) the fast add path takes; larger ones take the exact slow path.
_FAST_RESIDUAL_LIMIT = 127.0
_ROW_BLOCK_ELEMENTS = 1 << 21
ANCHORS = ("center", "top-left", "top-right", "bottom-left", "bottom-right")
_FILLS = ("mean", "edge", "grey")
MAX_STRENGTH = 10.0


@dataclass(frozen=True)
class Frame:
    """One synchronisation hypothesis: the image is a crop of ``area`` of the original, at ``anchor``."""

    area: float = 1.0
    anchor: str = "center"

    def describe(self) -> str:
        return "full" if self.area >= 1.0 else f"crop {self.area:g} {self.anchor}"


@dataclass(frozen=True)
class SearchConfig:
    """The crop hypotheses :meth:`Watermarker.decode` tries, in order, after the full frame."""

    area_fractions: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6)
    anchors: tuple[str, ...] = ("center",)  # ANCHORS adds the four corners (5x the hypotheses and the time)
    fill: str = "mean"  # what stands for the cropped-away part: the image's mean colour, its edges, or grey
    batch_size: int = 8

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
        return [Frame()] + [Frame(a, anchor) for a in self.area_fractions for anchor in self.anchors]


#: The default search (the full frame, then central crops of 90 % to 60 % of the area: 5 hypotheses).
CENTRAL_SEARCH = SearchConfig()
#: Central and corner crops (21 hypotheses): finds more crops, takes about 4x longer on unmarked images.
CORNER_SEARCH = SearchConfig(anchors=ANCHORS)


# ---------------------------------------------------------------- resampling


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


def _upscaled_offsets(residual: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """round(resized residual) + 128 as uint8 (3, height, width); the residual is (3, h, w) in 8-bit levels.

    Separable resampling as two matrix products, the second one in blocks of
    rows so that the float intermediate stays small.
    """
    rows = resize_matrix(height, residual.shape[1])
    cols_t = resize_matrix(width, residual.shape[2]).t().contiguous()
    partial = torch.matmul(rows, residual)  # (3, height, w)
    out = torch.empty(3, height, width, dtype=torch.uint8)
    step = max(1, _ROW_BLOCK_ELEMENTS // (3 * width))
    for top in range(0, height, step):
        block = torch.matmul(partial[:, top:top + step], cols_t)
        out[:, top:top + step] = block.round_().add_(128.0).clamp_(0.0, 255.0)
    return out


def _residual_bound(residual: torch.Tensor, width: int, height: int) -> float:
    """An upper bound of |resized residual| (resampling overshoot included)."""
    gain_rows = resize_matrix(height, residual.shape[1]).abs().sum(1).max()
    gain_cols = resize_matrix(width, residual.shape[2]).abs().sum(1).max()
    return float(residual.abs().max() * gain_rows * gain_cols)


def _add_fast(rgb: Image.Image, residual: torch.Tensor) -> Image.Image:
    """rgb + round(resized residual), clipped, in PIL (the residual must stay within +-127 levels)."""
    width, height = rgb.size
    offsets = _upscaled_offsets(residual, width, height).numpy()
    bands = [Image.frombuffer("L", (width, height), offsets[c], "raw", "L", 0, 1) for c in range(3)]
    return ImageChops.add(rgb, Image.merge("RGB", bands), scale=1.0, offset=-128)


def _add_exact(rgb: Image.Image, residual: torch.Tensor) -> Image.Image:
    """The same sum in numpy for any residual size (slower)."""
    width, height = rgb.size
    rows = resize_matrix(height, residual.shape[1])
    cols = resize_matrix(width, residual.shape[2])
    up = torch.matmul(torch.matmul(rows, residual), cols.t()).round_().permute(1, 2, 0).numpy()
    out = np.clip(np.asarray(rgb, dtype=np.float32) + up, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def add_residual(rgb: Image.Image, residual: torch.Tensor) -> Image.Image:
    """``clip(rgb + round(resize(residual)))``: residual (3, h, w) float, in 8-bit levels, resized bicubically."""
    width, height = rgb.size
    if _residual_bound(residual, width, height) <= _FAST_RESIDUAL_LIMIT:
        return _add_fast(rgb, residual)
    return _add_exact(rgb, residual)


# ---------------------------------------------------------------- synchronisation search

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
    file.  The networks run in eval mode (BatchNorm running statistics) under
    ``torch.inference_mode``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, config: NetworkConfig | None = None, *,
                 name: str = "model", metadata: dict | None = None, search: SearchConfig | None = None,
                 device: str | torch.device = "cpu", residual_psnr: float | None = None):
        self.config = config or getattr(encoder, "config", None)
        if not isinstance(self.config, NetworkConfig):
            raise ValueError("pass the model's NetworkConfig (the encoder does not carry one)")
        self.device = torch.device(device)
        self.encoder = encoder.to(self.device).eval()
        self.decoder = decoder.to(self.device).eval()
        self.name = name
        self.metadata = metadata or {}
        self.search = search or SearchConfig()
        self.residual_psnr = residual_psnr

    @classmethod
    def from_pretrained(cls, name_or_path=None, *, search: SearchConfig | None = None,
                        device: str | torch.device = "cpu") -> "Watermarker":
        """Load a shipped or user model by name, a model file by path, or the default model (None)."""
        from .model_files import load_model

        loaded = load_model(name_or_path)
        meta = {"description": loaded.metadata.description, "training_noise": loaded.metadata.training_noise,
                "training_data": loaded.metadata.training_data, "metrics": loaded.metadata.metrics,
                "source": loaded.source, "path": str(loaded.files.json_path)}
        return cls(loaded.encoder, loaded.decoder, loaded.config, name=loaded.metadata.name, metadata=meta,
                   search=search, device=device, residual_psnr=loaded.metadata.residual_psnr)

    def save(self, path, metadata=None, *, fp16: bool = False):
        """Write this model's files (see :func:`mbrs_engine.model_files.save_model`)."""
        from .model_files import save_model

        return save_model(path, self.encoder, self.decoder, self.config, metadata, fp16=fp16)

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

    def embed_bits(self, img: Image.Image, bits, strength: float = 1.0) -> Image.Image:
        """Embed L bits; same size out, 8-bit RGB (RGBA when the input had alpha, kept untouched)."""
        rgb, alpha = split_alpha(_check_image(img))
        message = _check_bits(bits, self.message_length)
        strength = _check_strength(strength)
        residual = self._residual(to_model_size(rgb, self.image_size), message, strength)
        return join_alpha(add_residual(rgb, residual), alpha)

    def decode_bits(self, img: Image.Image) -> np.ndarray:
        """L soft bits in [0, 1] (float32); bit = value > 0.5.  No synchronisation search."""
        rgb, _ = split_alpha(_check_image(img))
        return self._decode_batch(pil_to_tensor(to_model_size(rgb, self.image_size)))[0]

    # ------------------------------------------------------------ text

    def embed(self, img: Image.Image, text: str, strength: float = 1.0, key: str | None = None) -> Image.Image:
        """Embed a text message (UTF-8, at most :attr:`capacity` bytes; longer raises PayloadTooLongError)."""
        return self.embed_bits(img, payload.encode_text(text, self.message_length, key), strength)

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
        first = None
        for batch_frames, batch in self._frame_batches(rgb, frames, config):
            for frame, soft in zip(batch_frames, self._decode_batch(batch)):
                result = payload.decode_payload(soft, key, hypotheses=len(frames), threshold=threshold,
                                                erased=self.erased_bits(frame))
                result.frame = frame.describe()
                if result.detected:
                    return result
                first = first or result
        return first

    def _frame_batches(self, rgb: Image.Image, frames: list[Frame], config: SearchConfig):
        """(frames, input batch) pairs: the full frame alone first (most images need nothing else), then the rest."""
        yield frames[:1], pil_to_tensor(to_model_size(rgb, self.image_size))
        if len(frames) == 1:
            return
        view = pil_to_tensor(to_model_size(rgb, SEARCH_OVERSAMPLING * self.image_size))[0]
        for i in range(1, len(frames), config.batch_size):
            chunk = frames[i:i + config.batch_size]
            yield chunk, torch.stack([frame_view(view, f, self.image_size, config.fill) for f in chunk])
