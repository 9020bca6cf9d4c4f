"""Geometric, mixing and filter noise layers: each one's defining property, on odd, non-square batches."""
from __future__ import annotations

import math

import pytest
import torch

from mbrs_engine.noise import (GF, BrightnessContrast, Crop, CropResize, Cropout, Dropout, GaussianBlur,
                               GaussianNoise, Jitter, Resize)

N, H, W = 2, 37, 53
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def images(seed: int = 0, low: float = -1.0, high: float = 1.0, shape=(N, 3, H, W)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * (high - low) + low


def is_one_rectangle(mask: torch.Tensor) -> tuple[int, int]:
    """Assert a 2-D bool mask is one filled axis-aligned rectangle; return its height and width."""
    rows = mask.any(1).nonzero().flatten()
    cols = mask.any(0).nonzero().flatten()
    assert len(rows) and len(cols)
    assert rows.tolist() == list(range(rows[0], rows[-1] + 1))
    assert cols.tolist() == list(range(cols[0], cols[-1] + 1))
    assert torch.equal(mask, mask.any(1)[:, None] & mask.any(0)[None, :])
    return len(rows), len(cols)


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_crop_keeps_one_rectangle_of_area_p_and_fills_the_rest(fill):
    torch.manual_seed(1)
    x = images(low=-0.9, high=0.9)  # never equal to the fill value
    out = Crop(0.035, fill=fill)(x)
    assert out.shape == x.shape
    for i in range(N):
        kept = out[i] == x[i]
        assert torch.equal(kept[0], kept[1]) and torch.equal(kept[0], kept[2])
        assert torch.all(out[i][~kept] == fill)
        bh, bw = is_one_rectangle(kept[0])
        assert (bh, bw) == (round(H * math.sqrt(0.035)), round(W * math.sqrt(0.035)))
        assert abs(bh * bw / (H * W) - 0.035) < 0.005


def test_crop_whole_image_and_random_position():
    x = images()
    assert torch.equal(Crop(1.0)(x), x)
    torch.manual_seed(0)
    masks = {tuple((Crop(0.1)(x)[0, 0] == x[0, 0]).nonzero()[0].tolist()) for _ in range(20)}
    assert len(masks) > 5  # the rectangle moves


def test_cropout_inside_encoded_outside_cover():
    torch.manual_seed(2)
    enc, cov = images(0, 0.1, 1.0), images(1, -1.0, -0.1)
    layer = Cropout(0.3)
    assert layer.needs_cover
    out = layer(enc, cov)
    for i in range(N):
        inside = out[i, 0] == enc[i, 0]
        assert torch.equal(out[i][:, inside], enc[i][:, inside])
        assert torch.equal(out[i][:, ~inside], cov[i][:, ~inside])
        bh, bw = is_one_rectangle(inside)
        assert abs(bh * bw / (H * W) - 0.3) < 0.02
    with pytest.raises(ValueError, match="cover"):
        layer(enc)


def test_dropout_keeps_about_p_of_the_pixels_same_for_all_channels():
    torch.manual_seed(3)
    shape = (2, 3, 201, 199)
    enc, cov = images(0, 0.1, 1.0, shape), images(1, -1.0, -0.1, shape)
    layer = Dropout(0.3)
    assert layer.needs_cover
    out = layer(enc, cov)
    kept = out == enc
    assert torch.equal(kept, (out != cov))
    assert torch.equal(kept[:, 0], kept[:, 1]) and torch.equal(kept[:, 0], kept[:, 2])
    assert abs(kept[:, 0].float().mean().item() - 0.3) < 0.01  # std of the estimate is 0.0016
    assert torch.equal(Dropout(1.0)(enc, cov), enc) and torch.equal(Dropout(0.0)(enc, cov), cov)
    with pytest.raises(ValueError, match="cover"):
        layer(enc)


def test_gaussian_blur_kernel_constant_and_delta():
    assert GF is GaussianBlur
    assert GaussianBlur(2).kernel_size == 7 and GaussianBlur(1).kernel_size == 5
    assert GaussianBlur(2, kernel_size=9).kernel_size == 9
    const = torch.full((N, 3, H, W), 0.37)
    assert torch.allclose(GaussianBlur(2)(const), const, atol=1e-6)
    delta = torch.zeros(1, 3, 21, 23)
    delta[:, :, 10, 11] = 1.0
    out = GaussianBlur(2)(delta)
    k = torch.tensor([math.exp(-(i * i) / 8.0) for i in range(-3, 4)], dtype=torch.float64)
    k2 = torch.outer(k, k)
    k2 /= k2.sum()
    for c in range(3):
        assert torch.allclose(out[0, c, 7:14, 8:15].double(), k2, atol=1e-6)
    assert abs(out.sum().item() - 3.0) < 1e-5
    # images smaller than the kernel radius still work (replicate padding)
    assert GaussianBlur(2)(images(shape=(1, 3, 2, 3))).shape == (1, 3, 2, 3)


def test_gaussian_noise_std_is_in_8bit_levels():
    torch.manual_seed(4)
    x = torch.zeros(2, 3, 101, 99)
    out = GaussianNoise(5)(x)
    assert abs(out.std().item() * 127.5 - 5.0) < 0.1
    assert torch.equal(GaussianNoise(0)(x), x)


def test_brightness_contrast_formula_and_clamp():
    x = images()
    out = BrightnessContrast(brightness=0.1, contrast=0.5)(x)
    assert torch.allclose(out, (x * 0.5 + 0.2).clamp(-1, 1))
    assert torch.equal(BrightnessContrast()(x), x)
    assert BrightnessContrast(brightness=1.0)(x).eq(1.0).all()


def test_resize_sizes():
    x = images()
    assert Resize(0.5)(x).shape == (N, 3, 19, 27)  # 18.5 -> 19, 26.5 -> 27 (half up)
    assert Resize(1.5)(x).shape == (N, 3, 56, 80)
    assert Resize(0.5, back=True)(x).shape == x.shape
    const = torch.full((N, 3, H, W), -0.25)
    assert torch.allclose(Resize(0.3)(const), torch.full((N, 3, 11, 16), -0.25), atol=1e-6)


def test_crop_resize_keeps_size_and_zooms():
    torch.manual_seed(5)
    x = images()
    assert CropResize(0.25)(x).shape == x.shape
    assert torch.allclose(CropResize(1.0)(x), x)
    # a horizontal ramp stays a ramp with a smaller range after zooming in
    ramp = torch.linspace(-1, 1, W).expand(N, 3, H, W).contiguous()
    out = CropResize(0.25)(ramp)
    span = out[:, :, :, -1] - out[:, :, :, 0]
    assert (span > 0.5).all() and (span < 1.5).all()


RANDOM_LAYERS = [Crop(0.2), Cropout(0.3), Dropout(0.3), CropResize(0.3), GaussianNoise(3), Jitter()]
ALL_LAYERS = RANDOM_LAYERS + [Resize(0.7), Resize(0.7, back=True), GaussianBlur(2), BrightnessContrast(0.1, 0.8)]


@pytest.mark.parametrize("layer", RANDOM_LAYERS, ids=lambda l: l.spec())
def test_random_layers_reproducible_under_manual_seed(layer):
    enc, cov = images(0), images(1)
    torch.manual_seed(7)
    a = layer(enc, cov)
    torch.manual_seed(7)
    b = layer(enc, cov)
    c = layer(enc, cov)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layer", ALL_LAYERS, ids=lambda l: l.spec())
def test_shape_device_and_gradient(layer, device):
    layer = layer.to(device)
    enc = images(0).to(device).requires_grad_(True)
    cov = images(1).to(device)
    out = layer(enc, cov)
    assert out.device.type == device and out.dtype == enc.dtype
    if not isinstance(layer, Resize) or layer.back:
        assert out.shape == enc.shape
    out.square().sum().backward()
    assert enc.grad is not None and torch.isfinite(enc.grad).all() and enc.grad.abs().sum() > 0


@pytest.mark.parametrize("make, message", [
    (lambda: Crop(0), "p must be > 0"),
    (lambda: Crop(1.5), "p must be <= 1"),
    (lambda: Crop(0.1, fill=2), "fill"),
    (lambda: Crop("0.1"), "must be a number"),
    (lambda: Crop(True), "must be a number"),
    (lambda: Cropout(-0.1), "p must be"),
    (lambda: Dropout(1.1), "p must be"),
    (lambda: CropResize(0), "p must be"),
    (lambda: Resize(0), "scale must be"),
    (lambda: Resize(0.5, back="yes"), "back must be"),
    (lambda: Jitter(angle=-1), "angle must be"),
    (lambda: Jitter(scale=0.5), "scale must be"),
    (lambda: GaussianBlur(0), "sigma must be"),
    (lambda: GaussianBlur(2, kernel_size=4), "odd"),
    (lambda: GaussianBlur(2, kernel_size=2.5), "whole number"),
    (lambda: GaussianNoise(-1), "std must be"),
    (lambda: BrightnessContrast(contrast=-1), "contrast must be"),
    (lambda: BrightnessContrast(brightness=float("nan")), "finite"),
])
def test_bad_parameters_raise_clear_value_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_jitter_with_no_range_is_the_identity():
    x = images(0)
    assert torch.allclose(Jitter(0, 0, 0)(x), x, atol=1e-5)


def _centroid(img: torch.Tensor) -> torch.Tensor:
    """(x, y) of the brightness-weighted centre of each image of a (n, 1, h, w) batch, in pixels."""
    w = (img + 1).clamp_min(0)[:, 0]
    ys, xs = torch.meshgrid(torch.arange(w.shape[1]).float(), torch.arange(w.shape[2]).float(), indexing="ij")
    return torch.stack([(w * xs).sum((1, 2)), (w * ys).sum((1, 2))], 1) / w.sum((1, 2))[:, None]


@pytest.mark.parametrize("extreme", [0.0, 1.0])
def test_jitter_moves_a_point_by_the_drawn_similarity_about_the_centre(monkeypatch, extreme):
    """A blob 12 px right of the centre of a non-square image lands where the extreme draw (every range at
    its end: rand() = 0 or 1) puts it, in pixels of both axes (the aspect is accounted for)."""
    h, w = 41, 81
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    blob = (torch.exp(-((xs - cx - 12) ** 2 + (ys - cy) ** 2) / 4.0) * 2 - 1).expand(1, 3, h, w)
    monkeypatch.setattr(torch, "rand", lambda n, device=None: torch.full((n,), extreme))
    layer = Jitter(angle=10, shift=3, scale=0.2)
    out = layer(blob)
    sign = 2 * extreme - 1                     # every draw at +range (1) or -range (0)
    turn, zoom, shift = math.radians(10) * sign, 1 + 0.2 * sign, 3 * sign
    # the output samples the input at R(turn) p / zoom + shift: a feature at q appears at zoom R(-turn) (q - shift)
    qx, qy = 12 - shift, -shift
    px = zoom * (math.cos(turn) * qx + math.sin(turn) * qy)
    py = zoom * (-math.sin(turn) * qx + math.cos(turn) * qy)
    got = _centroid(out[:, :1]) - torch.tensor([cx, cy])
    assert got[0].tolist() == pytest.approx([px, py], abs=0.25)
