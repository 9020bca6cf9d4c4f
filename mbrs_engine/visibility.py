"""How visible a change to a photo is: a per-pixel map in just-noticeable differences, and one figure per image.

A small model of what the eye sees (the classic JND recipe, not a copy of
any one metric):

1. Both images go to CIELAB (D65), where a change of about 1 in L*, a* or b*
   is near the threshold of seeing on a flat patch.
2. The L* difference is split into three bands (fine, middle and coarse:
   differences of Gaussians), each weighed as the eye sees it; the a*/b*
   differences are blurred (the eye resolves colour less finely).
3. Each band is divided by a threshold that rises with the original's local
   contrast (*masking*: a change hides in texture and shows on flat sky,
   skin and dark surrounds), by a power of it that differs per band.  The
   contrast is eroded (a local minimum): a change next to an edge shows on
   the flat side, as it does to the eye.
4. They are combined (Euclidean) into the map; the image's figure is a high
   percentile of the map (the eye is drawn to the worst spots, not to the
   average).  The map is proportional to the change (twice the change, twice
   the map), which is what lets a residual be capped by it.

The constants (:class:`VisibilityModel`) were fitted so that the map's
regional maxima match butteraugli's (Debian's ``butteraugli``; about 1 =
just noticeable) on training photos under watermarks and JPEG re-saves, each
change applied to one ninth of the photo at a time, and checked on the
held-out and evaluation photos, which the fit never saw
(``benchmarks/calibrate_visibility.py``; the numbers are in
``docs/watermarking.md``, "Visibility").  It is an estimate for ranking and
showing *where* a mark may show; benchmarks report butteraugli itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

#: sRGB (linear) to XYZ, D65.
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
_WHITE = (0.95047, 1.0, 1.08883)


@dataclass(frozen=True)
class VisibilityModel:
    """The constants of the visibility map (see the module docstring)."""

    luma_jnd: float = 1.0         # L* change just seen on a flat patch, in the fine band
    middle_sigma: float = 1.6     # sigma (px) between the fine band and the middle one
    coarse_sigma: float = 3.0     # sigma (px) between the middle band and the coarse one
    middle_weight: float = 3.0    # the middle band's weight against the fine band's
    coarse_weight: float = 0.25   # the coarse band's
    middle_masking: float = 0.5   # the power of the masking threshold in the middle band (fine band: 1)
    coarse_masking: float = 1.0   # in the coarse band
    chroma_blur: float = 4.0      # sigma (px) of the blur on the a*, b* differences
    chroma_jnd: float = 0.5       # a*/b* change just seen on a flat patch (after the blur)
    chroma_masking: float = 0.25  # the power of the masking threshold for chroma
    mask_sigma: float = 2.0       # sigma (px) of the window of local contrast
    mask_contrast: float = 1.0    # local L* std at which the threshold has doubled
    mask_exponent: float = 1.6    # how fast the threshold rises with contrast beyond that
    mask_erosion: int = 4         # radius (px) of the local minimum taken of the threshold
    percentile: float = 99.5      # the image's figure: this percentile of the map
    scale: float = 1.08           # overall gain (fitted to butteraugli's scale)

    def __post_init__(self) -> None:
        for name in ("middle_sigma", "coarse_sigma", "chroma_blur", "mask_sigma", "middle_weight", "coarse_weight",
                     "middle_masking", "coarse_masking", "chroma_masking", "mask_erosion"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)!r}")
        for name in ("luma_jnd", "chroma_jnd", "mask_contrast", "scale"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.middle_sigma <= self.coarse_sigma:
            raise ValueError(f"middle_sigma ({self.middle_sigma!r}) must not exceed coarse_sigma "
                             f"({self.coarse_sigma!r})")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile!r}")

    @property
    def reach(self) -> int:
        """How far (px) a change or the original's contrast reaches into the map: the margin a band of rows
        needs to be mapped as in one piece."""
        blur = max(self.coarse_sigma, self.chroma_blur)
        reach = int(math.ceil(3.0 * (blur + self.mask_sigma))) + int(self.mask_erosion) + 4
        return reach + reach % 2  # even: a band starts on the same 2 x 2 grid as the whole (wide_blur)


DEFAULT_MODEL = VisibilityModel()


def _linear(srgb: torch.Tensor) -> torch.Tensor:
    """Linear light of sRGB values in [0, 1]."""
    c = srgb.clamp(0.0, 1.0)
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


#: Linear light of each 8-bit level (a table: most inputs are 8-bit images).
_LINEAR_LEVELS = _linear(torch.arange(256, dtype=torch.float32) / 255.0)


def _lab_of_linear(linear: torch.Tensor) -> torch.Tensor:
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=linear.dtype, device=linear.device)
    xyz = torch.einsum("ij,...jhw->...ihw", matrix, linear)
    xyz = xyz / torch.tensor(_WHITE, dtype=linear.dtype, device=linear.device).view(3, 1, 1)
    delta = 6.0 / 29.0
    f = torch.where(xyz > delta ** 3, xyz.clamp_min(1e-12) ** (1.0 / 3.0), xyz / (3 * delta ** 2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIELAB (D65) of sRGB values (..., 3, h, w): floats in [0, 1], or uint8 levels."""
    if rgb.dtype == torch.uint8:
        return _lab_of_linear(_LINEAR_LEVELS.to(rgb.device)[rgb.long()])
    return _lab_of_linear(_linear(rgb))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of (n, c, h, w), edges reflected (sigma 0: unchanged)."""
    if sigma <= 0.0:
        return x
    radius = max(1, int(round(3.0 * sigma)))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if radius < 1:
        return x
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    weights = (kernel / kernel.sum()).tolist()
    return _blur_along(_blur_along(x, weights, -1), weights, -2)


#: Blurs this wide or wider are worked out at half resolution (:func:`wide_blur`).
WIDE_BLUR = 4.0


def wide_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`gaussian_blur` of (n, c, h, w), for a sigma of :data:`WIDE_BLUR` or more on a copy of half the
    resolution (2 x 2 means, the blur, bilinear back): a fraction of the taps, and within a few per cent of it."""
    h, w = x.shape[-2:]
    if sigma < WIDE_BLUR or min(h, w) < 16:
        return gaussian_blur(x, sigma)
    half = F.avg_pool2d(F.pad(x, (0, w % 2, 0, h % 2), mode="replicate"), 2)
    half = gaussian_blur(half, math.sqrt(sigma * sigma - 0.25) / 2.0)  # the 2 x 2 mean's own spread taken off
    return F.interpolate(half, scale_factor=2.0, mode="bilinear", align_corners=False)[..., :h, :w]


def _blur_along(x: torch.Tensor, weights: list[float], dim: int) -> torch.Tensor:
    """x filtered along ``dim`` (-1 or -2) by the taps ``weights`` (2r + 1), edges reflected, as a sum of shifted
    copies: a depthwise convolution took 5-35 times as long on a CPU, and its time jumped with the width."""
    radius, size = len(weights) // 2, x.shape[dim]
    padded = F.pad(x, (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius), mode="reflect")
    out = padded.narrow(dim, 0, size) * weights[0]
    for i in range(1, len(weights)):
        out = out.add_(padded.narrow(dim, i, size), alpha=weights[i])
    return out


def _as_rgb(image) -> torch.Tensor:
    """A PIL image or RGB uint8 array (h, w, 3) as a uint8 tensor (1, 3, h, w); a float tensor (3, h, w) in
    [0, 1] as (1, 3, h, w)."""
    if isinstance(image, Image.Image):  # one copy, writable (np.asarray of a PIL image is read-only)
        image = np.array(image if image.mode == "RGB" else image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 array (h, w, 3), got {image.dtype} {image.shape}")
        return torch.from_numpy(image if image.flags.writeable and image.flags.c_contiguous else image.copy()) \
            .permute(2, 0, 1)[None]
    if isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == 3:
        return image[None].float()
    raise TypeError(f"expected a PIL image, an RGB uint8 array or a (3, h, w) tensor, got {type(image).__name__}")


def threshold(lab: torch.Tensor, model: VisibilityModel = DEFAULT_MODEL) -> torch.Tensor:
    """The per-pixel masking factor (1, 1, h, w) of an original in CIELAB (1, 3, h, w): 1 on a flat patch,
    rising with the local contrast of L*, then its local minimum over ``model.mask_erosion`` pixels."""
    lightness = lab[:, :1]
    mean = gaussian_blur(lightness, model.mask_sigma)
    std = (gaussian_blur(lightness * lightness, model.mask_sigma) - mean * mean).clamp_min(0.0).sqrt()
    return local_minimum(1.0 + (std / model.mask_contrast) ** model.mask_exponent, int(model.mask_erosion))


def local_minimum(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The minimum of (n, c, h, w) over the (2 radius + 1)-pixel square around each pixel (edges repeated);
    two passes of one dimension each."""
    if radius <= 0:
        return x
    size = 2 * radius + 1
    across = F.max_pool2d(F.pad(-x, (radius, radius, 0, 0), mode="replicate"), (1, size), stride=1)
    return -F.max_pool2d(F.pad(across, (0, 0, radius, radius), mode="replicate"), (size, 1), stride=1)


def lab_difference(original, changed) -> tuple[torch.Tensor, torch.Tensor]:
    """(CIELAB of the original, CIELAB difference changed - original), each (1, 3, h, w), in one piece.  Both
    images: PIL images, RGB uint8 arrays or (3, h, w) tensors in [0, 1], the same size."""
    rows_a, rows_b, (_, height) = _paired_rows(original, changed)
    lab = to_lab(rows_a(0, height))
    return lab, to_lab(rows_b(0, height)) - lab


def _squared_map(lab: torch.Tensor, diff: torch.Tensor, model: VisibilityModel) -> torch.Tensor:
    """The square of the visibility map (no square root: differentiable where nothing changed)."""
    mask = threshold(lab, model)
    lightness = diff[:, :1]
    middle_up = gaussian_blur(lightness, model.middle_sigma)
    coarse = gaussian_blur(lightness, model.coarse_sigma)
    fine, middle = lightness - middle_up, middle_up - coarse
    luma = ((fine / mask).pow(2) + (model.middle_weight * middle / mask.pow(model.middle_masking)).pow(2)
            + (model.coarse_weight * coarse / mask.pow(model.coarse_masking)).pow(2)) / model.luma_jnd ** 2
    chroma = wide_blur(diff[:, 1:], model.chroma_blur) / (model.chroma_jnd * mask.pow(model.chroma_masking))
    return (luma + chroma.pow(2).sum(1, keepdim=True)) * model.scale ** 2


def map_from_lab(lab: torch.Tensor, diff: torch.Tensor, model: VisibilityModel = DEFAULT_MODEL) -> torch.Tensor:
    """The visibility map (n, 1, h, w) of a CIELAB difference on an original (:func:`lab_difference`)."""
    return _squared_map(lab, diff, model).sqrt()


def training_penalty(cover: torch.Tensor, encoded: torch.Tensor, model: VisibilityModel = DEFAULT_MODEL) \
        -> torch.Tensor:
    """A differentiable stand-in for the figure, for training: sqrt(mean(map^4)) over a batch of covers and
    encoded images (n, 3, h, w) in the engine's [-1, 1] convention.  The fourth power weighs the worst spots
    the way the figure (a high percentile) does, while every pixel still gets a gradient; computed in fp32."""
    with torch.autocast(cover.device.type, enabled=False):
        lab = to_lab((cover.float() + 1) / 2)
        diff = to_lab((encoded.float() + 1) / 2) - lab
        return _squared_map(lab, diff, model).pow(2).mean().clamp_min(1e-12).sqrt()


#: Rows of the image worked on at once by :func:`visibility_map` (the memory it needs is bounded by that).
BAND_ROWS = 256


def _rows(image):
    """``rows(top, bottom)``: those rows of the image as :func:`_as_rgb` gives it (a PIL image is cropped first,
    so no full-size copy of it is made), and its (width, height)."""
    if isinstance(image, Image.Image):
        return (lambda top, bottom: _as_rgb(image.crop((0, top, image.width, bottom)))), image.size
    whole = _as_rgb(image)
    return (lambda top, bottom: whole[..., top:bottom, :]), (whole.shape[-1], whole.shape[-2])


def _paired_rows(original, changed):
    """:func:`_rows` of both images and their (width, height); they must be the same size."""
    (rows_a, size_a), (rows_b, size_b) = _rows(original), _rows(changed)
    if size_a != size_b:
        raise ValueError(f"the images differ in size: {size_a[0]}x{size_a[1]} and {size_b[0]}x{size_b[1]}")
    return rows_a, rows_b, size_a


def visibility_map(original, changed, model: VisibilityModel = DEFAULT_MODEL, check=None) -> np.ndarray:
    """How visible the change from ``original`` to ``changed`` is at each pixel (h, w), float32, in about
    just-noticeable differences.  Both: PIL images, RGB uint8 arrays or (3, h, w) tensors in [0, 1], same size.

    Worked out in bands of :data:`BAND_ROWS` rows (with a margin for the blurs, so the map is the same as in
    one piece); ``check()``, when given, is called between bands (a worker's cancel point)."""
    rows_a, rows_b, (width, height) = _paired_rows(original, changed)
    margin = model.reach
    out = np.empty((height, width), np.float32)
    with torch.no_grad():
        for top in range(0, height, BAND_ROWS):
            if check is not None:
                check()
            start, stop = max(0, top - margin), min(height, top + BAND_ROWS + margin)
            lab = to_lab(rows_a(start, stop))
            seen = map_from_lab(lab, to_lab(rows_b(start, stop)) - lab, model)
            out[top:top + BAND_ROWS] = seen[0, 0, top - start:top - start + BAND_ROWS].numpy()
    return out


def score(seen: np.ndarray, model: VisibilityModel = DEFAULT_MODEL) -> float:
    """The image's figure from its map: the map's ``model.percentile`` percentile."""
    if seen.size == 0:
        raise ValueError("an empty visibility map has no figure")
    return float(np.percentile(seen, model.percentile))


def visibility(original, changed, model: VisibilityModel = DEFAULT_MODEL) -> float:
    """One figure for how visible the change is (about 1 = just noticeable, like butteraugli)."""
    return score(visibility_map(original, changed, model), model)
