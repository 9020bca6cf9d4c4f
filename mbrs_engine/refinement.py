"""Embed-time refinement: tune one image's watermark against the model's own decoder, under attacks.

The encoder proposes a residual in one pass.  How well the decoder reads it
back depends on the photo (dense texture drowns it) and on what happens to
the file afterwards (JPEG, resizing, cropping).  :func:`refine_residual`
starts from the encoder's residual and improves it by gradient steps, at a
fixed squared error (the PSNR of the saved image is set, not traded):

* each step attacks the current marked image for real (libjpeg and the
  resize and crop of :mod:`mbrs_engine.attacks`, with parameters drawn from
  ranges), shows the decoder what it would see (for a crop: the search
  hypothesis of that crop, see :class:`mbrs_engine.watermarker.SearchConfig`)
  and takes a hinge loss on every bit read wrong or with less than a margin;
* the gradient reaches the residual through a differentiable stand-in of the
  same path (resampling and crops as they are, JPEG and 8-bit rounding as the
  identity): straight-through, so the loss is that of the real attacks;
* the residual is rescaled to the budget after every step, with clipping to
  [0, 255] taken into account, so that energy spent in saturated pixels
  counts as lost.

The networks are not changed and decoding does not change: there is nothing
to know at decode time.  Images larger than ``work_side`` are refined on a
downscaled copy: their residual is a smooth upscale of the H x H one, which
the attacks touch less at full size than on the copy.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .attacks import Attack, apply_chain
from .frames import Frame, decoder_input, decoder_input_stand_in
from .metrics import image_psnr, mse_to_psnr, psnr_to_mse
from .nets.precision import native_bf16
from .pixels import pil_to_tensor
from .resampling import REDUCING_GAP, add_residual, upscale_residual, upscaled_rows

#: The attack families a refinement step can draw one view from.
ATTACK_FAMILIES = ("identity", "jpeg", "resize", "crop")
#: The quality of the JPEG re-save after a resize (half the time) or a crop (always).
RESAVE_QUALITY = (60, 95)
PRECISIONS = ("auto", "fp32", "bf16")

#: ``progress(step, steps)``; it may raise to cancel the refinement.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RefineConfig:
    """How :func:`refine_residual` tunes a watermark (a Watermarker carries one as its default, or None)."""

    steps: int = 30                                 # the most gradient steps
    learning_rate: float = 0.3                      # Adam, in 8-bit levels of the H x H residual; cosine to a tenth
    margin: float = 0.25                            # every bit is pushed until its score is this far past 0.5
    attacks: tuple[str, ...] = ATTACK_FAMILIES      # one view of each per step
    jpeg_quality: tuple[int, int] = (40, 90)        # the range the "jpeg" view draws its quality from
    resize_scale: tuple[float, float] = (0.4, 0.9)  # the range the "resize" view draws its factor from
    patience: int = 5                               # stop early after this many steps in a row with nothing to push
    work_side: int = 512                            # larger images are refined on a copy with this longer side
    precision: str = "auto"                         # bf16 autocast where the CPU has native bf16, else fp32
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"refinement steps must be a positive whole number, got {self.steps!r}")
        if not self.learning_rate > 0.0 or not 0.0 < self.margin < 0.5:
            raise ValueError("refinement learning rate must be positive and the margin in (0, 0.5)")
        unknown = [a for a in self.attacks if a not in ATTACK_FAMILIES]
        if unknown or not self.attacks:
            raise ValueError(f"refinement attacks must be among {ATTACK_FAMILIES}, got {self.attacks}")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(f"refinement JPEG qualities must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}")
        low, high = self.resize_scale
        if not 0.1 <= low <= high <= 1.0:
            raise ValueError(f"refinement resize factors must satisfy 0.1 <= low <= high <= 1, got {self.resize_scale}")
        if self.patience < 1 or self.work_side < 64:
            raise ValueError("refinement patience must be positive and work_side at least 64")
        if self.precision not in PRECISIONS:
            raise ValueError(f"refinement precision must be one of {PRECISIONS}, got {self.precision!r}")


def _use_bf16(precision: str, device: torch.device) -> bool:
    return native_bf16(device) if precision == "auto" else precision == "bf16"


def work_copy(rgb: Image.Image, side: int) -> Image.Image:
    """``rgb`` itself, or a copy scaled down (antialiased) so that its longer side is ``side``."""
    width, height = rgb.size
    if max(width, height) <= side:
        return rgb
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)


def _draw_view(family: str, rng: np.random.Generator, config: RefineConfig, crop_areas):
    """(attack chain, decoder frame) of one view."""
    def resave() -> Attack:
        return Attack("jpeg", int(rng.integers(RESAVE_QUALITY[0], RESAVE_QUALITY[1] + 1)))

    if family == "jpeg":
        return (Attack("jpeg", int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))),), Frame()
    if family == "resize":
        chain = (Attack("resize", round(float(rng.uniform(*config.resize_scale)), 3)),)
        return (chain + (resave(),) if rng.random() < 0.5 else chain), Frame()
    if family == "crop":
        area = float(rng.choice(crop_areas))
        return (Attack("crop", area), resave()), Frame(area)
    return (), Frame()


def _stand_in(x: torch.Tensor, chain) -> torch.Tensor:
    """The differentiable stand-in of an attack chain on (1, 3, h, w): geometry as is, JPEG as identity."""
    for attack in chain:
        x = attack.stand_in(x)
    return x


class _Budget:
    """Keeps the upscaled residual at a mean squared error (8-bit levels), clipping of the image included."""

    def __init__(self, cover: torch.Tensor, mse: float):
        self.cover = cover  # (3, h, w) in 8-bit levels
        self.mse = mse

    def apply(self, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the residual at the budget, its upscale to the cover): upscaling is linear, so one serves both."""
        up = upscale_residual(residual, self.cover.shape[2], self.cover.shape[1])
        scale = torch.sqrt(self.mse / up.pow(2).mean().clamp_min(1e-12))
        with torch.no_grad():  # the factor that makes up for clipped pixels, by fixed-point iteration
            unclipped, factor = up * scale, 1.0
            for _ in range(4):
                mse = ((self.cover + factor * unclipped).clamp(0.0, 255.0) - self.cover).pow(2).mean().item()
                factor *= min(math.sqrt(self.mse / max(mse, 1e-12)), 4.0)
        return residual * (scale * factor), up * (scale * factor)


def refine_residual(wm, rgb: Image.Image, bits: torch.Tensor, residual: torch.Tensor, target_psnr: float,
                    config: RefineConfig, progress: Progress | None = None) -> torch.Tensor:
    """The refined residual (3, H, H) in 8-bit levels, for ``rgb`` (any size) carrying ``bits`` (1, L).

    ``residual`` is where it starts (the encoder's); the result has the
    squared error of ``target_psnr`` on the work copy of ``rgb``.  The caller
    renders it on the full image with :func:`render_at_psnr` (rounding and the
    work copy move the PSNR slightly).
    """
    work = work_copy(rgb, config.work_side)
    cover = pil_to_tensor(work)  # (1, 3, h, w) in [-1, 1]
    budget = _Budget((cover[0] + 1.0) * 127.5, psnr_to_mse(target_psnr))
    target = bits.to(wm.device).float()
    sign = 2.0 * target - 1.0
    size, fill, crop_areas = wm.image_size, wm.search.fill, wm.search.area_fractions
    bf16 = _use_bf16(config.precision, wm.device)
    rng = np.random.default_rng(config.seed)
    param = residual.detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.Adam([param], lr=config.learning_rate)
    quiet = 0
    for step in range(config.steps):
        if progress:
            progress(step, config.steps)
        current, up = budget.apply(param)
        marked = add_residual(work, current.detach())
        up = up[None] / 127.5
        views, keep = [], []
        for family in config.attacks:
            if family == "crop" and not crop_areas:
                continue
            chain, frame = _draw_view(family, rng, config, crop_areas)
            real = decoder_input(apply_chain(marked, chain, int(rng.integers(2**31))), frame, size, fill)
            stand_in = decoder_input_stand_in(_stand_in((cover + up).clamp(-1.0, 1.0), chain), frame, size, fill)
            views.append(stand_in + (real - stand_in).detach())
            erased = wm.erased_bits(frame)
            keep.append(torch.ones(wm.message_length) if erased is None else torch.from_numpy(~erased).float())
        batch = torch.stack(views).to(wm.device)
        with torch.autocast(wm.device.type, dtype=torch.bfloat16, enabled=bf16):
            scores = wm.decoder.scores(batch).float()
        weights = torch.stack(keep).to(wm.device)
        shortfall = torch.relu(config.margin - sign * (scores - 0.5)) * weights
        loss = shortfall.sum() / weights.sum()
        quiet = quiet + 1 if loss.item() == 0.0 else 0
        if quiet >= config.patience:
            break
        (grad,) = torch.autograd.grad(loss, param)
        param.grad = grad
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * (0.1 + 0.45 * (1.0 + math.cos(math.pi * step / config.steps)))
        optimizer.step()
    if progress:
        progress(config.steps, config.steps)
    return budget.apply(param)[0].detach()


#: Photos of more pixels than this have the rescaling estimated on every :data:`SAMPLE_ROW_STRIDE`-th row first,
#: so that the whole photo is rendered about once instead of three or four times.
SAMPLED_PSNR_PIXELS = 2_000_000
#: One row in this many is rendered for the estimate.  Rows spread evenly over the photo sample every part of
#: the tiles' cells; 16 strips of an eighth of the photo did not (the whole photo measured 0.1-0.3 dB below
#: them on 9 photos of 4-20 MP, so it was rendered twice).
SAMPLE_ROW_STRIDE = 8


def _toward_window(factor: float, measured: float, target: float, tolerance: float) -> float:
    """The factor rescaled so that a render measured at ``measured`` dB lands in the window's middle."""
    if not math.isfinite(measured):  # nothing left after rounding: louder
        return factor * 2.0
    return factor * 10.0 ** ((measured - target - tolerance / 2) / 20.0)


def _sampled_factor(rgb: Image.Image, residual: torch.Tensor, target: float, tolerance: float) -> float:
    """The factor that puts ``add_residual(rgb, factor * residual)`` in the PSNR window, estimated on rows
    spread over a large photo (1 for a photo of at most :data:`SAMPLED_PSNR_PIXELS`: no estimate)."""
    if rgb.width * rgb.height <= SAMPLED_PSNR_PIXELS:
        return 1.0
    rows = torch.arange(SAMPLE_ROW_STRIDE // 2, rgb.height, SAMPLE_ROW_STRIDE)
    original = torch.from_numpy(np.asarray(rgb)[rows.numpy()]).float()
    residual_rows, factor = upscaled_rows(residual, rgb.width, rgb.height, rows), 1.0
    for _ in range(6):
        change = (original + (residual_rows * factor).round()).clamp_(0.0, 255.0) - original
        measured = mse_to_psnr(float(change.square().mean()))
        # the middle of the window: the whole photo measures a little differently
        if abs(measured - target - tolerance / 2) <= tolerance / 4:
            break
        factor = _toward_window(factor, measured, target, tolerance)
    return factor


def render_at_psnr(rgb: Image.Image, residual: torch.Tensor, target: float, tolerance: float = 0.1) -> Image.Image:
    """``add_residual(rgb, c * residual)``, c chosen so that the 8-bit result's PSNR is in [target, target + tolerance].

    Rounding to 8 bit and clipping (and, for large images, the work copy the
    residual was tuned on) move the PSNR a little from the budget; a few
    rescalings on the real image bring it back.  The result never falls below
    ``target``; if the window is not reached, the closest image above it is kept.
    """
    factor, best = _sampled_factor(rgb, residual, target, tolerance), None
    for _ in range(12):
        marked = add_residual(rgb, residual * factor)
        measured = image_psnr(rgb, marked)
        if measured >= target:
            best = marked
            if measured <= target + tolerance:
                break
        factor = _toward_window(factor, measured, target, tolerance)
    return best if best is not None else add_residual(rgb, residual * 0.0)
