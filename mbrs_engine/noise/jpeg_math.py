"""Torch building blocks of the JPEG noise layers (see :mod:`mbrs_engine.noise.jpeg`).

Everything here works on float tensors of 8-bit *levels* (values in ``0..255``,
not the engine's ``[-1, 1]``), batched as ``(N, C, H, W)``, on any device.

Most steps come in two flavours, chosen by the ``exact`` flag:

* ``exact=False``: plain real arithmetic, differentiable everywhere (JPEG-SS,
  JPEG-Mask);
* ``exact=True``: the integer arithmetic of libjpeg(-turbo), the library behind
  PIL, reproduced with ``floor`` on float tensors (every intermediate value is an
  integer below 2**24, exact in float32 and float64; on CUDA the simulated JPEG
  computes in float64 so that TF32 matmuls cannot disturb it).  Used by the simulated
  JPEG that aims to match PIL; ``floor`` has a zero gradient, as JPEG's has.

The pieces: JFIF colour transforms, the 8x8 block split/merge and orthonormal
8x8 DCT-II, the ITU T.81 Annex K quantisation tables scaled by quality as
libjpeg's ``jpeg_set_quality`` scales them, libjpeg's chroma downsampling (box
average with its alternating rounding bias, and its edge padding) and its
"fancy" (triangle-filter) upsampling used by default when decoding.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ._util import check_number

BLOCK = 8

#: PIL's ``subsampling`` codes and the (horizontal, vertical) chroma factors.
SUBSAMPLING = {"4:4:4": (0, (1, 1)), "4:2:2": (1, (2, 1)), "4:2:0": (2, (2, 2))}

# ITU T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), natural order.
_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)

# JFIF (ITU-R BT.601, full range) weights of R and B in luma.
_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB

# libjpeg's fixed-point constants: FIX(x) = round(x * 2**16).
_SCALE = 1 << 16
_HALF = 1 << 15


def _fix(value: float) -> int:
    return int(value * _SCALE + 0.5)


# ---------------------------------------------------------------- quantisation


def validate_quality(quality, owner: str = "JPEG") -> int:
    """``quality`` as an int in 1..100, or a ValueError naming ``owner``."""
    return check_number(owner, "quality", quality, 1, 100, integer=True)


def validate_subsampling(subsampling: str, owner: str = "JPEG") -> str:
    """``subsampling`` if it is one of "4:4:4", "4:2:2", "4:2:0", else a ValueError."""
    if not isinstance(subsampling, str) or subsampling not in SUBSAMPLING:
        raise ValueError(f"{owner}: subsampling must be one of {sorted(SUBSAMPLING)}, got {subsampling!r}")
    return subsampling


def quality_scale(quality: int) -> int:
    """libjpeg's ``jpeg_quality_scaling``: the percentage applied to the base tables."""
    quality = validate_quality(quality)
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def scaled_table(base, quality: int) -> torch.Tensor:
    """A base table scaled like libjpeg's ``jpeg_add_quant_table`` (force_baseline)."""
    scale = quality_scale(quality)
    table = torch.tensor(base, dtype=torch.int64)
    return ((table * scale + 50) // 100).clamp(1, 255).float()


def luma_table(quality: int) -> torch.Tensor:
    """The 8x8 luminance quantisation table libjpeg uses at this quality."""
    return scaled_table(_LUMA_TABLE, quality)


def chroma_table(quality: int) -> torch.Tensor:
    """The 8x8 chrominance quantisation table libjpeg uses at this quality."""
    return scaled_table(_CHROMA_TABLE, quality)


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest, ties away from zero (libjpeg's quantiser rounding)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


# ---------------------------------------------------------------- colour


#: JFIF RGB -> YCbCr weights (real), and their exact inverse's chroma columns.
_YCC_FROM_RGB = torch.tensor(
    [
        [_KR, _KG, _KB],
        [-0.5 * _KR / (1 - _KB), -0.5 * _KG / (1 - _KB), 0.5],
        [0.5, -0.5 * _KG / (1 - _KR), -0.5 * _KB / (1 - _KR)],
    ],
    dtype=torch.float64,
)
_RGB_FROM_CHROMA = torch.linalg.inv(_YCC_FROM_RGB)[:, 1:]  # its luma column is all ones

#: libjpeg's ``rgb_ycc_convert``: fixed-point weights and rounding (0.5 - epsilon for Cb, Cr).
_FIXED_YCC_FROM_RGB = torch.tensor(
    [
        [_fix(0.29900), _fix(0.58700), _fix(0.11400)],
        [-_fix(0.16874), -_fix(0.33126), _fix(0.5)],
        [_fix(0.5), -_fix(0.41869), -_fix(0.08131)],
    ],
    dtype=torch.float64,
)
_FIXED_ROUNDING = (_HALF, _HALF - 1, _HALF - 1)


def _mix(planes: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Per-pixel matrix product over the channel axis of (N, C, H, W)."""
    return torch.einsum("ij,njhw->nihw", matrix.to(planes.device, planes.dtype), planes)


def _per_channel(values, like: torch.Tensor) -> torch.Tensor:
    """Constants (one per channel) shaped (1, C, 1, 1) to broadcast over ``like``."""
    return torch.tensor(values, device=like.device, dtype=like.dtype).view(1, -1, 1, 1)


def rgb_to_ycbcr(rgb: torch.Tensor, exact: bool = False) -> torch.Tensor:
    """RGB levels to JFIF YCbCr levels (Cb, Cr centred on 128), (N, 3, H, W).

    ``exact`` reproduces libjpeg's ``rgb_ycc_convert`` on integer inputs (its
    fixed-point weights, rounding of Y and the 0.5-epsilon rounding of Cb, Cr).
    """
    offset = _per_channel((0.0, 128.0, 128.0), rgb)
    if not exact:
        return _mix(rgb, _YCC_FROM_RGB) + offset
    mixed = _mix(rgb, _FIXED_YCC_FROM_RGB) + _per_channel(_FIXED_ROUNDING, rgb)
    return torch.floor(mixed / _SCALE) + offset


def ycbcr_to_rgb(ycc: torch.Tensor, exact: bool = False) -> torch.Tensor:
    """JFIF YCbCr levels back to RGB levels, (N, 3, H, W); no clamping.

    Without ``exact`` it is the exact inverse of :func:`rgb_to_ycbcr`; with it,
    libjpeg's ``ycc_rgb_convert`` (fixed-point, rounded) on integer inputs.
    """
    y, cb, cr = ycc[:, 0:1], ycc[:, 1:2] - 128.0, ycc[:, 2:3] - 128.0
    if not exact:
        return _mix(torch.cat([cb, cr], dim=1), _RGB_FROM_CHROMA) + y
    r = y + torch.floor((_fix(1.40200) * cr + _HALF) / _SCALE)
    g = y + torch.floor((-_fix(0.34414) * cb - _fix(0.71414) * cr + _HALF) / _SCALE)
    b = y + torch.floor((_fix(1.77200) * cb + _HALF) / _SCALE)
    return torch.cat([r, g, b], dim=1)


# ---------------------------------------------------------------- blocks and DCT


def pad_to_multiple(x: torch.Tensor, multiple_h: int, multiple_w: int | None = None) -> torch.Tensor:
    """Replicate the bottom row and right column until H, W are multiples."""
    multiple_w = multiple_h if multiple_w is None else multiple_w
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple_h, -w % multiple_w
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def split_blocks(planes: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) with H, W multiples of 8 to blocks (N, C, H/8, W/8, 8, 8)."""
    n, c, h, w = planes.shape
    if h % BLOCK or w % BLOCK:
        raise ValueError(f"plane size {h}x{w} is not a multiple of {BLOCK}: pad it first")
    blocks = planes.reshape(n, c, h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    return blocks.permute(0, 1, 2, 4, 3, 5)


def merge_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_blocks`."""
    n, c, bh, bw = blocks.shape[:4]
    return blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, c, bh * BLOCK, bw * BLOCK)


@lru_cache(maxsize=16)
def dct_matrix(device=None, dtype=torch.float32) -> torch.Tensor:
    """The orthonormal 8x8 DCT-II matrix D (rows are frequencies): coef = D X D^T.

    Cached per device and dtype: do not modify the returned tensor.
    """
    k = torch.arange(BLOCK, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / (2 * BLOCK))
    d[0] /= math.sqrt(2.0)
    d *= math.sqrt(2.0 / BLOCK)
    return d.to(device=device, dtype=dtype)


def dct_8x8(blocks: torch.Tensor) -> torch.Tensor:
    """2-D DCT-II of every 8x8 block (last two axes); JPEG's normalisation."""
    d = dct_matrix(blocks.device, blocks.dtype)
    return d @ blocks @ d.T


def idct_8x8(coefs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct_8x8`."""
    d = dct_matrix(coefs.device, coefs.dtype)
    return d.T @ coefs @ d


def dct_blocks(planes: torch.Tensor) -> torch.Tensor:
    """Level-shifted (-128) block DCT of planes (N, C, H, W), H and W multiples of 8.

    Returns coefficients (N, C, H/8, W/8, 8, 8), ``[..., u, v]`` with ``u`` the
    vertical and ``v`` the horizontal frequency, as a JPEG encoder sees them.
    """
    return dct_8x8(split_blocks(planes - 128.0))


def idct_blocks(coefs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct_blocks`: coefficients back to planes of levels."""
    return merge_blocks(idct_8x8(coefs)) + 128.0


def low_frequency_mask(keep: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """8x8 mask that is 1 on the ``keep`` x ``keep`` lowest frequencies, else 0."""
    k = torch.arange(BLOCK, device=device)
    return ((k[:, None] < keep) & (k[None, :] < keep)).to(dtype)


# ---------------------------------------------------------------- chroma resampling


def _floor_if(x: torch.Tensor, exact: bool) -> torch.Tensor:
    return torch.floor(x) if exact else x


def _parity_bias(length: int, even: float, odd: float, axis: int, like: torch.Tensor) -> torch.Tensor:
    """A vector alternating ``even, odd, even, ...`` laid along ``axis`` of ``like``."""
    bias = torch.tensor([even, odd], device=like.device, dtype=like.dtype).repeat((length + 1) // 2)[:length]
    shape = [1] * like.dim()
    shape[axis] = length
    return bias.view(shape)


def downsample_chroma(planes: torch.Tensor, factors: tuple[int, int], exact: bool = False) -> torch.Tensor:
    """Chroma planes (N, C, H, W) to subsampled planes padded to multiples of 8.

    ``factors`` = (horizontal, vertical), each 1 or 2.  Padding is libjpeg's:
    rows are replicated to the full block width *before* averaging
    (``expand_right_edge``); an odd last row is duplicated before averaging and
    the averaged planes are then replicated down to a multiple of 8
    (``expand_bottom_edge``).  The average is a box filter; ``exact`` adds
    libjpeg's alternating bias (1, 2, ... for 2x2; 0, 1, ... for 2x1) and
    truncates, as ``h2v2_downsample`` / ``h2v1_downsample`` do.
    """
    fh, fv = factors
    x = pad_to_multiple(planes, fv, BLOCK * fh)
    mean = F.avg_pool2d(x, (fv, fh)) if fh * fv > 1 else x
    if exact and fh * fv > 1:
        first = 1.0 if fh * fv == 4 else 0.0
        mean = torch.floor(mean + _parity_bias(mean.shape[-1], first, first + 1, 3, mean) / (fh * fv))
    return pad_to_multiple(mean, BLOCK)


def _neighbours(x: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The previous and next sample along ``axis``, edges replicated."""
    n = x.shape[axis]
    prev = torch.cat([x.narrow(axis, 0, 1), x.narrow(axis, 0, n - 1)], dim=axis)
    nxt = torch.cat([x.narrow(axis, 1, n - 1), x.narrow(axis, n - 1, 1)], dim=axis)
    return prev, nxt


def _interleave(even: torch.Tensor, odd: torch.Tensor, axis: int) -> torch.Tensor:
    """Alternate samples of ``even`` and ``odd`` along ``axis`` (doubles its length)."""
    stacked = torch.stack([even, odd], dim=axis + 1)
    shape = list(even.shape)
    shape[axis] *= 2
    return stacked.reshape(shape)


def _triangle_up(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Double ``axis`` with weights 3/4 nearest + 1/4 next nearest (times 4, unrounded)."""
    prev, nxt = _neighbours(x, axis)
    return _interleave(3 * x + prev, 3 * x + nxt, axis)


#: Rounding offsets of libjpeg's fancy upsamplers for even and odd output columns.
_FANCY_ROUNDING = {(2, 2): (8.0, 7.0), (2, 1): (1.0, 2.0)}


def upsample_chroma(
    planes: torch.Tensor, factors: tuple[int, int], size: tuple[int, int], exact: bool = False
) -> torch.Tensor:
    """Decoded (padded) chroma planes back to full size ``(H, W)``.

    libjpeg's default "fancy" upsampling: a triangle filter (3/4 of the nearest
    sample + 1/4 of the next one) over the chroma samples that belong to the
    image (``ceil(H/fv) x ceil(W/fh)``), edges replicated.  ``exact`` adds the
    rounding offsets of ``h2v2_fancy_upsample`` (+8, +7 then >> 4) and
    ``h2v1_fancy_upsample`` (+1, +2 then >> 2) and truncates.
    """
    fh, fv = factors
    h, w = size
    x = planes[..., : -(-h // fv), : -(-w // fh)]
    scale = 1
    if fv == 2:
        x, scale = _triangle_up(x, 2), scale * 4
    if fh == 2:
        x, scale = _triangle_up(x, 3), scale * 4
    if scale > 1:
        if exact:
            even, odd = _FANCY_ROUNDING[factors]
            x = torch.floor((x + _parity_bias(x.shape[-1], even, odd, 3, x)) / scale)
        else:
            x = x / scale
    return x[..., :h, :w]
