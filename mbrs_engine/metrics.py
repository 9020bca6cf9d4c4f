"""Image-quality and decoding metrics: PSNR, SSIM and bit error rate, batched in torch.

PSNR and SSIM are always computed on 8-bit images, as they would be saved:
float inputs (the engine's ``[-1, 1]`` convention) are rounded to 8 bit first,
so the numbers describe the file a user gets, not unclamped network floats.
Accepted image inputs: uint8 or float tensors ``(N, 3, H, W)`` / ``(3, H, W)``,
numpy ``uint8`` arrays ``(H, W, 3)`` and PIL images.  Each function returns one
value per image (a float64 tensor of shape ``(N,)``); take ``.mean()`` for a
batch figure.

SSIM follows Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, data range 255, population (not sample) covariances,
averaged over the valid region (window fully inside the image) and the
channels — the same as scikit-image's ``structural_similarity`` with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255, channel_axis=-1``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .pixels import to_uint8

ImageLike = torch.Tensor | np.ndarray | Image.Image


def as_uint8_batch(image: ImageLike) -> torch.Tensor:
    """Any accepted image input to a uint8 tensor (N, C, H, W)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"numpy images must be uint8, got {image.dtype}")
        arr = image[..., None] if image.ndim == 2 else image
        image = torch.from_numpy(np.array(arr)).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"unsupported image type {type(image).__name__}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) or (C, H, W), got shape {tuple(image.shape)}")
    return image if image.dtype == torch.uint8 else to_uint8(image)


def _pair(a: ImageLike, b: ImageLike) -> tuple[torch.Tensor, torch.Tensor]:
    a8, b8 = as_uint8_batch(a), as_uint8_batch(b)
    if a8.shape != b8.shape:
        raise ValueError(f"image shapes differ: {tuple(a8.shape)} vs {tuple(b8.shape)}")
    return a8.double(), b8.to(a8.device).double()


#: Rows of an image that :func:`image_psnr` compares at a time (bounds its memory on very large photos).
_PSNR_ROWS = 256


def image_psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR (dB) between two 8-bit RGB images of the same size: exact (integer squared errors), and in
    blocks of rows, so a 100 MP photo takes a few MB beyond the two images (:func:`psnr` works in float64)."""
    first, second = (np.asarray(x if x.mode == "RGB" else x.convert("RGB")) for x in (a, b))
    if first.shape != second.shape:
        raise ValueError(f"image shapes differ: {first.shape} vs {second.shape}")
    total = 0
    for top in range(0, first.shape[0], _PSNR_ROWS):
        diff = first[top:top + _PSNR_ROWS].astype(np.int32) - second[top:top + _PSNR_ROWS]
        total += int(np.square(diff).sum(dtype=np.int64))
    mse = total / first.size
    return mse_to_psnr(mse)


def psnr(a: ImageLike, b: ImageLike) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (inf where identical)."""
    x, y = _pair(a, b)
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    return g / g.sum()


def _filter_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of every channel, valid region only."""
    c = x.shape[1]
    k = window.to(x.device)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim(a: ImageLike, b: ImageLike, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (mean over the valid region and the channels)."""
    x, y = _pair(a, b)
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"SSIM needs images of at least {window_size}x{window_size}, got {tuple(x.shape[-2:])}")
    w = _gaussian_window(window_size, sigma)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _filter_valid(x, w), _filter_valid(y, w)
    vx = _filter_valid(x * x, w) - mx * mx
    vy = _filter_valid(y * y, w) - my * my
    cxy = _filter_valid(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def bit_errors(soft, bits, threshold: float = 0.5) -> int:
    """Wrong bits of one message: ``soft`` values (bit = value > threshold) against the 0/1 ``bits``."""
    soft, bits = np.asarray(soft).reshape(-1), np.asarray(bits).reshape(-1)
    if soft.shape != bits.shape:
        raise ValueError(f"{soft.size} decoded bits against {bits.size} expected")
    return int(((soft > threshold) != bits.astype(bool)).sum())


def bit_error_rate(decoded: torch.Tensor | np.ndarray, message: torch.Tensor | np.ndarray,
                   threshold: float = 0.5) -> torch.Tensor:
    """Fraction of wrong bits per message; ``decoded`` holds soft values, bit = value > threshold."""
    d = torch.as_tensor(np.asarray(decoded) if isinstance(decoded, np.ndarray) else decoded)
    m = torch.as_tensor(np.asarray(message) if isinstance(message, np.ndarray) else message)
    if d.dim() == 1:
        d, m = d.unsqueeze(0), m.reshape(1, -1)
    if d.shape != m.shape:
        raise ValueError(f"decoded shape {tuple(d.shape)} differs from message shape {tuple(m.shape)}")
    bits = d.detach().float() > threshold
    return (bits != (m.to(bits.device).float() > 0.5)).double().mean(1)


def mse_to_psnr(mse: float) -> float:
    """The PSNR (dB) of a mean squared error in 8-bit levels squared (inf for none)."""
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def psnr_to_mse(target_psnr: float) -> float:
    """The mean squared error (in 8-bit levels squared) that gives ``target_psnr`` dB."""
    return 255.0**2 / math.pow(10.0, target_psnr / 10.0)


def residual_scale_for_psnr(residual: torch.Tensor, target_psnr: float) -> torch.Tensor:
    """Per-image factor s (shape (N, 1, 1, 1)) so that s * residual has the MSE of ``target_psnr`` dB.

    ``residual`` is a float batch (N, C, H, W) in the engine's [-1, 1] units
    (one 8-bit level = 2/255).
    """
    target = psnr_to_mse(target_psnr) * (2.0 / 255.0) ** 2
    mse = residual.float().pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return (target / mse).sqrt().view(-1, 1, 1, 1)
