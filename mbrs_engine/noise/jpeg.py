"""The JPEG family of noise layers: real libjpeg, its torch simulations, and the
differentiable approximations the MBRS paper trains with.

* :class:`RealJpeg`: real libjpeg (through PIL, in memory, thread-parallel over
  the batch); bit-identical to saving and reopening the 8-bit image with PIL.
* :class:`JpegSim` (alias :data:`Jpeg`, the reference's ``Jpeg(Q)``): the JPEG
  pipeline re-implemented in torch with libjpeg's tables, chroma resampling and
  integer rounding; its rounding makes its gradient zero, as in the reference.
* :class:`JpegMask`: JPEG-Mask (Zhu et al.): keep the 5x5 / 3x3 lowest DCT
  frequencies of Y / Cb, Cr in every 8x8 block; differentiable.
* :class:`JpegSS`: JPEG-SS (Shin and Song) as the MBRS paper writes it
  (equation (1)); differentiable.
* :class:`KorniaJpeg`: kornia's differentiable JPEG, for comparison.

All follow :mod:`mbrs_engine.pixels` (float ``(N, 3, H, W)`` RGB in ``[-1, 1]``)
and accept any H and W: blocks are completed by edge replication internally
and the output is cropped back to the input size.
"""
from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..pixels import from_uint8, to_uint8
from . import jpeg_math as jm
from ._util import call_spec
from .base import NoiseLayer

GRADIENTS = ("stop", "straight-through")


def _levels(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images to the 8-bit scale 0..255 (float, unrounded, unclamped)."""
    return (x + 1.0) * 127.5


def _from_levels(levels: torch.Tensor) -> torch.Tensor:
    """8-bit levels 0..255 back to the engine's [-1, 1]."""
    return levels / 127.5 - 1.0


def _on_levels(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Apply ``fn`` (8-bit levels to levels) to [-1, 1] images ``x``.

    Levels are computed as :func:`mbrs_engine.pixels.to_uint8` computes them (in
    float32 at least), ``fn`` runs in ``dtype`` (at least) with autocast off
    (autocast would run the DCT matmuls in half precision, far too coarse for
    quantisation steps), and the result comes back in x's dtype.
    """
    base = torch.promote_types(x.dtype, torch.float32)
    with torch.autocast(x.device.type, enabled=False):
        levels = fn(_levels(x.to(base)).to(torch.promote_types(dtype, base)))
        return _from_levels(levels.to(base)).to(x.dtype)


class _QualityLayer(NoiseLayer):
    """A layer with a validated JPEG quality (1..100) and chroma subsampling."""

    #: Keyword arguments and their defaults; spec() writes those that differ.
    defaults = {"subsampling": "4:2:0"}

    def __init__(self, quality: int = 50, subsampling: str = "4:2:0"):
        super().__init__()
        self.quality = jm.validate_quality(quality, type(self).__name__)
        self.subsampling = jm.validate_subsampling(subsampling, type(self).__name__)

    def spec(self) -> str:
        changed = {k: getattr(self, k) for k, v in self.defaults.items() if getattr(self, k) != v}
        return call_spec(type(self).__name__, self.quality, **changed)


# ---------------------------------------------------------------- real libjpeg


def _executor() -> ThreadPoolExecutor:
    """One pool per process for PIL encode/decode (PIL releases the GIL there)."""
    return _executor_of(os.getpid())


@lru_cache(maxsize=1)
def _executor_of(pid: int) -> ThreadPoolExecutor:
    # Keyed by process id: a forked child (e.g. a DataLoader worker) inherits the
    # parent's pool object but not its threads, so it must make its own.
    return ThreadPoolExecutor(max_workers=min(32, os.cpu_count() or 1), thread_name_prefix="jpeg")


def pil_jpeg_roundtrip(image: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """One HxWx3 uint8 image through PIL's JPEG encoder and decoder, in memory."""
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, "JPEG", quality=quality, subsampling=jm.SUBSAMPLING[subsampling][0])
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"))


class RealJpeg(_QualityLayer):
    """Real JPEG compression by libjpeg (PIL), as the paper's real JPEG layer.

    The batch is quantised to 8 bit exactly as :func:`mbrs_engine.pixels.to_uint8`
    does, each image is encoded and decoded in memory by PIL (in parallel
    threads), and the result comes back as floats on the input's device.

    ``gradient="stop"`` (the paper): the output is detached, so no gradient
    reaches the encoder.  ``gradient="straight-through"``: forward is the JPEG
    output (bit for bit), backward the identity.
    """

    defaults = {"subsampling": "4:2:0", "gradient": "stop"}

    def __init__(self, quality: int = 50, subsampling: str = "4:2:0", gradient: str = "stop"):
        super().__init__(quality, subsampling)
        if gradient not in GRADIENTS:
            raise ValueError(f"RealJpeg: gradient must be one of {GRADIENTS}, got {gradient!r}")
        self.gradient = gradient

    def compress_uint8(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) through libjpeg; uint8 (N, 3, H, W) on the CPU."""
        arrays = images.permute(0, 2, 3, 1).contiguous().cpu().numpy()

        def one(image: np.ndarray) -> np.ndarray:
            return pil_jpeg_roundtrip(image, self.quality, self.subsampling)

        decoded = list(_executor().map(one, arrays)) if len(arrays) > 1 else [one(a) for a in arrays]
        return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        decoded = self.compress_uint8(to_uint8(encoded)).to(encoded.device)
        jpeg = from_uint8(decoded).to(encoded.dtype)
        if self.gradient == "straight-through":
            return jpeg + (encoded - encoded.detach())  # = x + (jpeg - x).detach(), bit-exact
        return jpeg


# ---------------------------------------------------------------- torch simulations


def simulate_jpeg(
    rgb: torch.Tensor,
    quality: int,
    subsampling: str,
    quantiser: Callable[[torch.Tensor], torch.Tensor],
    exact: bool,
) -> torch.Tensor:
    """The JPEG pipeline in torch on RGB levels (0..255); ``quantiser`` replaces rounding.

    Colour transform, 8x8 DCT of level-shifted (-128) planes with chroma
    subsampled, division by the libjpeg-scaled tables, ``quantiser``,
    multiplication back, inverse DCT, chroma upsampling, back to RGB, clamp.
    ``exact`` follows libjpeg's integer arithmetic at every other step too
    (8-bit input, colour transforms, resampling, 8-bit planes).  Returns levels.
    """
    h, w = rgb.shape[-2:]
    factors = jm.SUBSAMPLING[subsampling][1]
    rgb = rgb.clamp(0.0, 255.0)
    if exact:
        rgb = torch.round(rgb)  # the 8-bit image, as pixels.to_uint8 makes it
    ycc = jm.rgb_to_ycbcr(rgb, exact)
    luma = jm.pad_to_multiple(ycc[:, :1], jm.BLOCK)
    luma = _code_planes(luma, jm.luma_table(quality), quantiser, exact)
    chroma = jm.downsample_chroma(ycc[:, 1:], factors, exact)
    chroma = _code_planes(chroma, jm.chroma_table(quality), quantiser, exact)
    chroma = jm.upsample_chroma(chroma, factors, (h, w), exact)
    rgb = jm.ycbcr_to_rgb(torch.cat([luma[..., :h, :w], chroma], dim=1), exact)
    return rgb.clamp(0.0, 255.0)


def _code_planes(
    planes: torch.Tensor, table: torch.Tensor, quantiser: Callable[[torch.Tensor], torch.Tensor], exact: bool
) -> torch.Tensor:
    """Encode and decode planes of levels (H, W multiples of 8) with one table."""
    table = table.to(planes.device, planes.dtype)
    coefs = quantiser(jm.dct_blocks(planes) / table) * table
    planes = jm.idct_blocks(coefs)
    if exact:
        planes = torch.floor(planes + 0.5)
    return planes.clamp(0.0, 255.0)


class _TorchJpeg(_QualityLayer):
    """JPEG in torch (:func:`simulate_jpeg`) with the subclass's quantiser."""

    #: Follow libjpeg's integer arithmetic outside the quantiser too.
    exact = False

    @staticmethod
    def quantise(x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        def run(rgb: torch.Tensor) -> torch.Tensor:
            return simulate_jpeg(rgb, self.quality, self.subsampling, self.quantise, self.exact)

        # float32 is exact enough for libjpeg's arithmetic, but CUDA may run float32 matmuls as TF32.
        exact_on_gpu = self.exact and encoded.device.type != "cpu"
        return _on_levels(run, encoded, torch.float64 if exact_on_gpu else torch.float32)


class JpegSim(_TorchJpeg):
    """Simulated JPEG in torch: libjpeg's pipeline with real rounding (``Jpeg(Q)``).

    Follows libjpeg (as PIL calls it) step by step: JFIF colour transform in its
    fixed-point arithmetic, level shift, chroma subsampling with its bias and
    edge padding, orthonormal 8x8 DCT, Annex K tables scaled like
    ``jpeg_set_quality``, rounding of the quantised coefficients (ties away from
    zero), inverse DCT, fancy chroma upsampling, back to RGB, clamp.  The only
    departure is the DCT itself (exact float instead of libjpeg's integer
    ``ISLOW``), which flips a rounding now and then: the output is 8-bit-valued
    and about 50 dB from PIL's on photos (tested by PSNR).

    Rounding makes the gradient zero, as in the reference's ``Jpeg(Q)``: the
    output stays in the autograd graph but nothing flows back to the encoder.
    """

    exact = True
    quantise = staticmethod(jm.round_half_away)


#: The reference's name for the torch JPEG with rounding.
Jpeg = JpegSim


def ss_quantise(x: torch.Tensor) -> torch.Tensor:
    """The MBRS paper's equation (1): ``x**3`` where ``|x| < 0.5``, else ``x``."""
    return torch.where(x.abs() < 0.5, x**3, x)


class JpegSS(_TorchJpeg):
    """JPEG-SS (Shin and Song) as the MBRS paper writes it: differentiable JPEG.

    The pipeline of :class:`JpegSim` in real arithmetic (no 8-bit rounding
    anywhere), with the rounding of quantised coefficients replaced by the
    paper's equation (1): ``q(x) = x**3 if |x| < 0.5 else x``.  Taken literally,
    this only shrinks small coefficients and leaves the others unrounded; Shin
    and Song's own approximation (``round(x) + (x - round(x))**3``) and the
    reference implementation's JpegSS differ from it.  We follow the paper.
    """

    exact = False
    quantise = staticmethod(ss_quantise)


class JpegMask(NoiseLayer):
    """JPEG-Mask (Zhu et al., HiDDeN): zero the high DCT frequencies; differentiable.

    In every 8x8 block keep the 5x5 lowest frequencies of Y and the 3x3 of Cb
    and Cr, zero the rest; no quantisation, no clamping (so the output's block
    DCT is exactly masked).  As in the reference, chroma stays at full
    resolution (no subsampling).  Blocks are completed by edge replication and
    the output cropped back.
    """

    LUMA_KEEP = 5
    CHROMA_KEEP = 3

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        return _on_levels(self._mask, encoded, torch.float32)

    def _mask(self, rgb: torch.Tensor) -> torch.Tensor:
        h, w = rgb.shape[-2:]
        ycc = jm.rgb_to_ycbcr(jm.pad_to_multiple(rgb, jm.BLOCK))
        keep = [self.LUMA_KEEP, self.CHROMA_KEEP, self.CHROMA_KEEP]
        mask = torch.stack([jm.low_frequency_mask(k, ycc.device, ycc.dtype) for k in keep])
        coefs = jm.dct_blocks(ycc) * mask.view(1, 3, 1, 1, jm.BLOCK, jm.BLOCK)
        return jm.ycbcr_to_rgb(jm.idct_blocks(coefs))[..., :h, :w]

    def spec(self) -> str:
        return "JpegMask()"


class KorniaJpeg(_QualityLayer):
    """kornia's differentiable JPEG (``kornia.enhance.jpeg_codec_differentiable``).

    For comparison with the layers above.  kornia takes RGB in [0, 1] and a
    quality tensor; its chroma is 4:2:0.  Images are replicate-padded to
    multiples of 16 (whole 4:2:0 blocks) and cropped back.
    """

    def __init__(self, quality: int = 50):
        super().__init__(quality)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        from kornia.enhance import jpeg_codec_differentiable  # lazy: kornia is slow to import

        h, w = encoded.shape[-2:]
        unit = jm.pad_to_multiple((encoded + 1.0) / 2.0, 2 * jm.BLOCK)
        quality = torch.tensor([float(self.quality)], device=encoded.device, dtype=encoded.dtype)
        out = jpeg_codec_differentiable(unit, quality)
        return out[..., :h, :w] * 2.0 - 1.0
