"""JPEG noise layers and their torch building blocks: each one's defining property.

RealJpeg is bit-identical to PIL; JpegSim is close to PIL by PSNR on photos;
JpegMask zeroes exactly the masked DCT coefficients; JpegSS applies the paper's
equation (1); all layers take odd, non-square batches, keep images of a batch
independent, and have the gradient behaviour they document.
"""
from __future__ import annotations

import io
import multiprocessing
import os

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from mbrs_engine.noise import jpeg_math as jm
from mbrs_engine.noise.jpeg import (Jpeg, JpegMask, JpegSim, JpegSS, KorniaJpeg, RealJpeg, simulate_jpeg,
                                    ss_quantise)
from mbrs_engine.pixels import from_uint8, to_uint8

N, H, W = 2, 37, 53
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket"]
ALL_LAYERS = [
    RealJpeg(50), RealJpeg(50, gradient="straight-through"), RealJpeg(90, subsampling="4:4:4"),
    JpegSim(50), JpegSim(90, subsampling="4:2:2"), JpegSim(75, subsampling="4:4:4"),
    JpegSS(50), JpegMask(), KorniaJpeg(50),
]


def images(seed: int = 0, shape=(N, 3, H, W), low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * (high - low) + low


def smooth_images(seed: int = 0, shape=(N, 3, H, W)) -> torch.Tensor:
    """Random but image-like (low-frequency) content, so JPEG keeps it recognisable."""
    coarse = images(seed, (shape[0], 3, shape[2] // 6 + 2, shape[3] // 6 + 2), -0.8, 0.8)
    return torch.nn.functional.interpolate(coarse, size=shape[2:], mode="bicubic", align_corners=False)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """skimage's photos (HxWx3 uint8, 300x451 to 512x512)."""
    return {name: getattr(skimage.data, name)() for name in PHOTOS}


def crop(img: np.ndarray, top: int, left: int, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(img[top:top + h, left:left + w])


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return from_uint8(torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).contiguous())


def to_array(x: torch.Tensor) -> np.ndarray:
    return to_uint8(x)[0].permute(1, 2, 0).numpy()


def pil_round_trip(img: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# ---------------------------------------------------------------- jpeg_math


@pytest.mark.parametrize("quality", [1, 10, 25, 49, 50, 51, 75, 90, 99, 100])
def test_tables_are_libjpegs(quality):
    """Our scaled tables are those PIL (libjpeg) writes into the file."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    written = Image.open(buf).quantization
    assert jm.luma_table(quality).flatten().int().tolist() == list(written[0])
    assert jm.chroma_table(quality).flatten().int().tolist() == list(written[1])


def test_quality_scaling():
    assert [jm.quality_scale(q) for q in (1, 10, 49, 50, 90, 100)] == [5000, 500, 102, 100, 20, 0]
    assert jm.luma_table(100).eq(1).all() and jm.luma_table(1).eq(255).all()


def test_dct_is_orthonormal_jpeg_dct():
    d = jm.dct_matrix(dtype=torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    flat = torch.full((1, 1, 8, 8), 200.0)
    coefs = jm.dct_blocks(flat)
    assert coefs[..., 0, 0].item() == pytest.approx(8 * 72.0, abs=1e-3)  # DC = 8 x (mean - 128)
    assert coefs.flatten()[1:].abs().max() < 1e-3
    planes = images(1, (2, 3, 16, 24)) * 100 + 128
    assert torch.equal(jm.merge_blocks(jm.split_blocks(planes)), planes)
    assert torch.allclose(jm.idct_blocks(jm.dct_blocks(planes)), planes, atol=1e-3)
    assert jm.split_blocks(planes).shape == (2, 3, 2, 3, 8, 8)
    assert torch.equal(jm.split_blocks(planes)[0, 1, 1, 2], planes[0, 1, 8:16, 16:24])
    with pytest.raises(ValueError, match="multiple of 8"):
        jm.split_blocks(planes[..., :15, :])


def test_colour_transforms():
    rgb = torch.round(images(2, (2, 3, 9, 11), 0, 255))
    ycc = jm.rgb_to_ycbcr(rgb)
    assert torch.allclose(jm.ycbcr_to_rgb(ycc), rgb, atol=1e-3)
    exact = jm.rgb_to_ycbcr(rgb, exact=True)
    assert torch.equal(exact, torch.round(exact)) and (exact - ycc).abs().max() <= 0.5 + 1e-3
    # JFIF values of pure colours (libjpeg's integer results).
    pure = torch.tensor([[255.0, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]).T.reshape(1, 3, 1, 4)
    expected = [[76, 150, 29, 255], [85, 44, 255, 128], [255, 21, 107, 128]]
    assert jm.rgb_to_ycbcr(pure, exact=True).reshape(3, 4).int().tolist() == expected
    back = jm.ycbcr_to_rgb(jm.rgb_to_ycbcr(rgb, exact=True), exact=True)
    assert (back - rgb).abs().max() <= 2


def test_downsampling_follows_libjpeg():
    # Four 2x2 cells each summing to 4k + 2: libjpeg's bias 1, 2, 1, 2 truncates to k, k+1, k, k+1.
    cell = torch.tensor([[10.0, 11.0], [11.0, 10.0]])  # sum 42
    plane = cell.repeat(1, 4).reshape(1, 1, 2, 8)
    exact = jm.downsample_chroma(plane, (2, 2), exact=True)
    assert exact.shape == (1, 1, 8, 8)  # padded to whole blocks
    assert exact[0, 0, 0, :4].tolist() == [10, 11, 10, 11]
    assert torch.allclose(jm.downsample_chroma(plane, (2, 2))[0, 0, 0, :4], torch.full((4,), 10.5))
    # 2x1: bias 0, 1 on pairs summing to odd 21 -> 10, 11.
    assert jm.downsample_chroma(plane, (2, 1), exact=True)[0, 0, 0, :4].tolist() == [10, 11, 10, 11]
    # Padding: columns replicated before averaging, rows after (libjpeg's expand_right/bottom_edge).
    plane = torch.tensor([[[[0.0, 4.0, 8.0], [40.0, 44.0, 48.0]]]])
    out = jm.downsample_chroma(plane, (2, 2))
    assert out[0, 0, 0, :3].tolist() == [22.0, 28.0, 28.0]
    assert torch.equal(out[0, 0, 1:], out[0, 0, :1].expand(7, 8))


def test_fancy_upsampling_follows_libjpeg():
    chroma = torch.tensor([[[[0.0, 16.0], [32.0, 48.0]]]])
    up = jm.upsample_chroma(chroma, (2, 2), (4, 4), exact=True)
    # Rows: 3/4 nearest + 1/4 next (edges replicated), then columns, +8/+7 >> 4.
    rows = torch.tensor([[0.0, 16], [8, 24], [24, 40], [32, 48]]) * 4
    cols = torch.stack([rows[:, 0] * 4, rows[:, 0] * 3 + rows[:, 1], rows[:, 1] * 3 + rows[:, 0], rows[:, 1] * 4], 1)
    expected = torch.floor((cols + torch.tensor([8.0, 7, 8, 7])) / 16)
    assert torch.equal(up[0, 0], expected)
    assert torch.allclose(jm.upsample_chroma(chroma, (2, 2), (4, 4)), cols[None, None] / 16)
    flat = torch.full((1, 2, 16, 16), 77.0)
    for factors in [(2, 2), (2, 1), (1, 1)]:
        assert torch.equal(jm.upsample_chroma(flat, factors, (13, 15), exact=True), torch.full((1, 2, 13, 15), 77.0))


def test_low_frequency_mask():
    mask = jm.low_frequency_mask(5)
    assert mask.sum() == 25 and mask[:5, :5].eq(1).all() and mask[5:].eq(0).all() and mask[:, 5:].eq(0).all()


# ---------------------------------------------------------------- RealJpeg


@pytest.mark.parametrize("subsampling, code", [("4:2:0", 2), ("4:2:2", 1), ("4:4:4", 0)])
@pytest.mark.parametrize("quality", [10, 50, 95])
def test_real_jpeg_is_bit_identical_to_pil(subsampling, code, quality):
    x = images(3)
    out = RealJpeg(quality, subsampling=subsampling)(x)
    assert out.dtype == x.dtype and out.shape == x.shape
    for i in range(N):
        direct = pil_round_trip(to_uint8(x[i]).permute(1, 2, 0).numpy(), quality, code)
        assert np.array_equal(to_uint8(out[i]).permute(1, 2, 0).numpy(), direct)
    assert torch.equal(from_uint8(to_uint8(out)), out)


def test_real_jpeg_gradients():
    x = images(4).requires_grad_()
    stop = RealJpeg(50)(x)
    assert not stop.requires_grad
    through = RealJpeg(50, gradient="straight-through")(x)
    assert torch.equal(through.detach(), stop)
    (through * 3).sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 3.0))


def test_real_jpeg_keeps_dtype():
    x = images(5).double()
    assert RealJpeg(50)(x).dtype == torch.float64


# ---------------------------------------------------------------- JpegSim


# Measured on these 256x256 centre crops (astronaut, coffee, chelsea, rocket):
# Q50 49.49, 52.20, 50.67, 57.19 dB; Q90 50.88, 51.17, 51.35, 54.12 dB.
# (Whole photos: Q50 50.67, 50.97, 51.30, 52.18; Q90 51.95, 50.60, 52.40, 53.99.)
@pytest.mark.parametrize("quality", [50, 90])
def test_jpeg_sim_is_close_to_pil(photos, quality):
    crops = [crop(img, (img.shape[0] - 256) // 2, (img.shape[1] - 256) // 2, 256, 256) for img in photos.values()]
    out = JpegSim(quality)(torch.cat([to_tensor(img) for img in crops]))
    assert torch.equal(from_uint8(to_uint8(out)), out)  # 8-bit valued, like a decoded JPEG
    scores = [psnr(to_array(out[i:i + 1]), pil_round_trip(img, quality)) for i, img in enumerate(crops)]
    assert min(scores) > 48.5 and np.mean(scores) > 51.0, scores


@pytest.mark.parametrize("subsampling, code", [("4:2:2", 1), ("4:4:4", 0)])
def test_jpeg_sim_other_subsamplings_close_to_pil(photos, subsampling, code):
    img = crop(photos["chelsea"], 100, 150, 61, 83)  # odd size: libjpeg's edge handling
    out = JpegSim(50, subsampling=subsampling)(to_tensor(img))
    assert psnr(to_array(out), pil_round_trip(img, 50, code)) > 45


def test_jpeg_sim_odd_sizes_close_to_pil(photos):
    for h, w in [(37, 53), (38, 54), (17, 33), (5, 3)]:
        img = crop(photos["astronaut"], 100, 60, h, w)
        assert psnr(to_array(JpegSim(50)(to_tensor(img))), pil_round_trip(img, 50)) > 40, (h, w)


def test_jpeg_sim_has_zero_gradient_like_the_reference():
    assert Jpeg is JpegSim
    x = images(6).requires_grad_()
    out = JpegSim(50)(x)
    assert out.requires_grad
    out.sum().backward()
    assert torch.count_nonzero(x.grad) == 0


# ---------------------------------------------------------------- JpegMask


def test_jpeg_mask_zeroes_exactly_the_masked_coefficients():
    x = images(7, (2, 3, 32, 48), -0.6, 0.6)
    out = JpegMask()(x)
    before = jm.dct_blocks(jm.rgb_to_ycbcr((x + 1) * 127.5).double())
    after = jm.dct_blocks(jm.rgb_to_ycbcr((out + 1) * 127.5).double())
    for channel, keep in enumerate([5, 3, 3]):
        mask = jm.low_frequency_mask(keep, dtype=torch.bool)
        assert after[:, channel][..., ~mask].abs().max() < 1e-2
        assert torch.allclose(after[:, channel][..., mask], before[:, channel][..., mask], atol=1e-2)
        assert before[:, channel][..., ~mask].abs().max() > 1  # there was something to remove


def test_jpeg_mask_keeps_smooth_content_and_is_differentiable():
    flat = torch.full((1, 3, 19, 27), 0.25)
    assert torch.allclose(JpegMask()(flat), flat, atol=1e-5)
    x = images(8).requires_grad_()
    JpegMask()(x).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().mean() > 0.1


# ---------------------------------------------------------------- JpegSS


def test_ss_quantiser_is_the_papers_equation_1():
    x = torch.tensor([-3.0, -0.5, -0.4, -0.1, 0.0, 0.2, 0.49, 0.5, 1.7])
    expected = torch.tensor([-3.0, -0.5, -0.064, -0.001, 0.0, 0.008, 0.49**3, 0.5, 1.7])
    assert torch.allclose(ss_quantise(x), expected)
    x.requires_grad_()
    ss_quantise(x).sum().backward()
    assert torch.allclose(x.grad, torch.where(x.abs() < 0.5, 3 * x.detach() ** 2, torch.ones_like(x)))


def test_jpeg_ss_applies_equation_1_to_quantised_coefficients():
    # 4:4:4 and mid-range values: no subsampling, no clamping, so each output
    # coefficient divided by its table entry is exactly q(input coefficient / entry).
    x = images(9, (1, 3, 16, 24), -0.5, 0.5)
    quality = 50
    out = JpegSS(quality, subsampling="4:4:4")(x)
    tables = torch.stack([jm.luma_table(quality), jm.chroma_table(quality), jm.chroma_table(quality)])
    tables = tables.double().view(1, 3, 1, 1, 8, 8)
    ratio_in = jm.dct_blocks(jm.rgb_to_ycbcr((x.double() + 1) * 127.5)) / tables
    ratio_out = jm.dct_blocks(jm.rgb_to_ycbcr((out.double() + 1) * 127.5)) / tables
    assert torch.allclose(ratio_out, ss_quantise(ratio_in), atol=1e-3)
    assert (ratio_in.abs() < 0.5).any() and (ratio_in.abs() >= 0.5).any()


def test_jpeg_ss_is_differentiable_and_near_jpeg_sim():
    x = smooth_images(10).requires_grad_()
    out = JpegSS(50)(x)
    out.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().mean() > 0.01
    sim = JpegSim(50)(x.detach())
    assert (out.detach() - sim).abs().mean() < 0.05  # same pipeline, coefficients left unrounded


# ---------------------------------------------------------------- KorniaJpeg


def test_kornia_jpeg_is_differentiable_and_near_real_jpeg(photos):
    img = crop(photos["coffee"], 150, 250, 37, 53)
    x = to_tensor(img).requires_grad_()
    out = KorniaJpeg(50)(x)
    assert psnr(to_array(out), pil_round_trip(img, 50)) > 30
    out.sum().backward()
    assert x.grad.abs().sum() > 0


# ---------------------------------------------------------------- every layer


@pytest.mark.parametrize("layer", ALL_LAYERS, ids=lambda layer: layer.spec())
def test_every_layer_takes_odd_non_square_batches(layer):
    x = smooth_images(11, (3, 3, H, W))
    out = layer(x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert (out - x).abs().mean() < 0.1  # still the same images, lightly distorted
    assert (out - x).abs().max() > 0     # but distorted


@pytest.mark.parametrize("layer", ALL_LAYERS, ids=lambda layer: layer.spec())
def test_every_layer_treats_batch_images_independently(layer):
    x = smooth_images(12, (3, 3, H, W))
    together = layer(x)
    for i in range(3):
        assert torch.allclose(layer(x[i:i + 1]), together[i:i + 1], atol=1e-5), i


@pytest.mark.parametrize("layer", ALL_LAYERS, ids=lambda layer: layer.spec())
@pytest.mark.parametrize("device", DEVICES)
def test_every_layer_runs_on_every_device(layer, device):
    x = smooth_images(13, (2, 3, 24, 40)).to(device)
    out = layer(x)
    assert out.device == x.device and out.shape == x.shape
    if device != "cpu":
        expected = layer(x.cpu())
        if isinstance(layer, (RealJpeg, JpegSim)):  # 8-bit outputs: at most rare one-level rounding flips
            assert (to_uint8(out.cpu()).int() - to_uint8(expected).int()).abs().float().mean() < 0.01
        else:
            assert torch.allclose(out.cpu(), expected, atol=1e-4)


@pytest.mark.parametrize("layer", [JpegSim(50), JpegSS(50), JpegMask()], ids=lambda layer: layer.spec())
def test_torch_layers_ignore_autocast_and_keep_low_precision_dtypes(layer):
    x = smooth_images(15)
    expected = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(layer(x), expected)
    low = layer(x.bfloat16())
    assert low.dtype == torch.bfloat16 and (low.float() - layer(x.bfloat16().float())).abs().max() < 1e-2


def test_specs():
    assert [layer.spec() for layer in ALL_LAYERS] == [
        "RealJpeg(50)", "RealJpeg(50, gradient='straight-through')", "RealJpeg(90, subsampling='4:4:4')",
        "JpegSim(50)", "JpegSim(90, subsampling='4:2:2')", "JpegSim(75, subsampling='4:4:4')",
        "JpegSS(50)", "JpegMask()", "KorniaJpeg(50)",
    ]


@pytest.mark.parametrize("make", [RealJpeg, JpegSim, JpegSS, KorniaJpeg])
@pytest.mark.parametrize("quality", [0, 101, 50.5, "50", True, None])
def test_quality_is_validated(make, quality):
    with pytest.raises(ValueError, match="quality"):
        make(quality)


def test_other_arguments_are_validated():
    for make in (RealJpeg, JpegSim, JpegSS):
        with pytest.raises(ValueError, match="subsampling"):
            make(50, subsampling="4:1:1")
    with pytest.raises(ValueError, match="gradient"):
        RealJpeg(50, gradient="identity")


def test_simulate_jpeg_with_identity_quantiser_and_444_is_lossless():
    rgb = images(14, (2, 3, H, W), 0.0, 255.0)
    out = simulate_jpeg(rgb, 50, "4:4:4", lambda c: c, exact=False)
    assert torch.allclose(out, rgb, atol=1e-3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_real_jpeg_works_in_a_forked_child():
    x = images(16, (3, 3, 16, 16))
    expected = RealJpeg(50)(x)  # the parent's thread pool now exists
    # One torch thread in the child, as DataLoader workers do (torch's own pool is not fork-safe).
    with multiprocessing.get_context("fork").Pool(1, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        out = pool.apply_async(RealJpeg(50), (x,)).get(timeout=20)
    assert torch.equal(out, expected)
