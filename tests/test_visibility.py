"""The visibility map and figure (mbrs_engine.visibility) and the visibility cap (mbrs_engine.perceptual)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mbrs_engine.perceptual import Shaping, cap_gain, residual_visibility
from mbrs_engine.visibility import (VisibilityModel, gaussian_blur, to_lab, training_penalty, visibility,
                                   visibility_map)


def _flat(value=128, size=64) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def _textured(size=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(128 + rng.normal(0, 40, (size, size, 1)).repeat(3, 2), 0, 255).astype(np.uint8)


def _plus(image: np.ndarray, change: np.ndarray) -> np.ndarray:
    return np.clip(image.astype(np.int16) + change, 0, 255).astype(np.uint8)


def test_cielab_of_known_colours():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).T.reshape(3, 3, 1)
    lab = to_lab(rgb)[:, :, 0].T
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)


def test_blur_keeps_a_constant_and_the_mean():
    x = torch.rand(1, 2, 20, 30)
    assert torch.allclose(gaussian_blur(torch.ones(1, 1, 9, 9), 2.0), torch.ones(1, 1, 9, 9), atol=1e-6)
    assert gaussian_blur(x, 0.0) is x
    assert float(gaussian_blur(x, 1.0).std()) < float(x.std())


@pytest.mark.parametrize("shape, sigma", [((1, 1, 30, 1887), 1.0), ((2, 2, 40, 33), 4.0), ((1, 3, 5, 7), 2.0)])
def test_blur_is_the_separable_gaussian_convolution_with_reflected_edges(shape, sigma):
    """Known values: the same sums as a depthwise convolution by the normalised Gaussian (radius 3 sigma, at
    most a side less one), the edges reflected."""
    import math

    import torch.nn.functional as F

    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    radius = min(round(3 * sigma), shape[-1] - 1, shape[-2] - 1)
    kernel = torch.tensor([math.exp(-0.5 * (t / sigma) ** 2) for t in range(-radius, radius + 1)])
    kernel = (kernel / kernel.sum()).float()
    c = shape[1]
    square = (kernel[:, None] * kernel[None, :]).expand(c, 1, -1, -1)
    expected = F.conv2d(F.pad(x, (radius,) * 4, mode="reflect"), square, groups=c)
    assert torch.allclose(gaussian_blur(x, sigma), expected, atol=1e-6)


def test_no_change_is_invisible():
    image = _textured()
    assert visibility(image, image) == 0.0
    assert visibility_map(image, image).shape == (64, 64)


def test_the_same_change_shows_more_on_a_flat_patch_than_on_texture():
    change = np.random.default_rng(1).choice([-3, 3], (64, 64, 1)).repeat(3, 2)
    flat, busy = _flat(), _textured()
    assert visibility(flat, _plus(flat, change)) > 2 * visibility(busy, _plus(busy, change))


def test_the_figure_grows_with_the_change_about_in_proportion():
    image = _flat(100)
    change = np.random.default_rng(2).normal(0, 1, (64, 64, 3))
    small = visibility(image, _plus(image, np.rint(2 * change).astype(np.int16)))
    large = visibility(image, _plus(image, np.rint(4 * change).astype(np.int16)))
    assert 1.6 < large / small < 2.4


def test_the_map_is_proportional_to_the_change():
    """What the cap relies on: twice the change, twice the map, everywhere (bands, blurs and masking are linear
    in the change; the masking depends on the original only)."""
    from mbrs_engine.visibility import map_from_lab

    rng = np.random.default_rng(5)
    lab = to_lab(torch.from_numpy(rng.integers(0, 256, (1, 3, 48, 40), dtype=np.uint8)))
    diff = torch.randn(1, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(map_from_lab(lab, 2.0 * diff), 2.0 * map_from_lab(lab, diff), rtol=1e-4, atol=1e-5)


def test_local_minimum_is_the_minimum_over_the_square():
    from mbrs_engine.visibility import local_minimum

    x = torch.rand(1, 2, 9, 11, generator=torch.Generator().manual_seed(1))
    assert local_minimum(x, 0) is x
    got = local_minimum(x, 2)
    for i, j in ((0, 0), (4, 5), (8, 10), (3, 0)):
        window = x[..., max(0, i - 2):i + 3, max(0, j - 2):j + 3]
        assert torch.equal(got[..., i, j], window.amin(dim=(-2, -1)))


def _stripes(period: int, amplitude: int = 2, size: int = 96) -> np.ndarray:
    """Vertical luma stripes of ``period`` px (a square wave) of +-amplitude levels, on all three channels."""
    wave = np.where((np.arange(size) // (period // 2)) % 2 == 0, amplitude, -amplitude)
    return np.broadcast_to(wave[None, :, None], (size, size, 3)).astype(np.int16)


def test_a_middle_frequency_pattern_shows_more_than_a_fine_one_of_the_same_amplitude():
    """The fitted bands: stripes of +-2 levels with a period of 10 px (where a tiled watermark on a photo puts
    its energy) on flat grey weigh more than stripes alternating every pixel (butteraugli: 4.9 against 1.5;
    the map: about 1.5 against 0.85, docs/watermarking.md, "Visibility")."""
    grey = _flat(128, 96)
    fine = visibility(grey, _plus(grey, _stripes(2)))
    middle = visibility(grey, _plus(grey, _stripes(10)))
    assert middle > 1.5 * fine


def test_a_change_beside_an_edge_shows_as_on_the_flat_side():
    """The masking is eroded: texture next to a flat area does not hide a change made on the flat side."""
    photo = np.asarray(_half_flat_photo()).copy()
    change = np.zeros(photo.shape, np.int16)
    near, far = change.copy(), change.copy()
    near[40:56, 42:47] = 3  # on the flat half, 1-6 px from the textured half (which starts at column 48)
    far[40:56, 10:15] = 3   # on the flat half, far from it
    seen_near = visibility_map(photo, _plus(photo, near)).max()
    seen_far = visibility_map(photo, _plus(photo, far)).max()
    assert seen_near > 0.8 * seen_far
    unbroken = VisibilityModel(mask_erosion=0)
    assert visibility_map(photo, _plus(photo, near), unbroken).max() < seen_near


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        visibility(_flat(size=8), _flat(size=9))
    with pytest.raises(TypeError):
        visibility([1, 2, 3], _flat())
    with pytest.raises(ValueError, match="RGB uint8"):
        visibility(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="luma_jnd"):
        VisibilityModel(luma_jnd=0.0)
    with pytest.raises(ValueError, match="percentile"):
        VisibilityModel(percentile=0.0)
    with pytest.raises(ValueError, match="middle_sigma"):
        VisibilityModel(middle_sigma=4.0, coarse_sigma=3.0)
    with pytest.raises(ValueError, match="mask_erosion"):
        VisibilityModel(mask_erosion=-1)
    with pytest.raises(ValueError, match="cap"):
        Shaping(cap=0.0)


def _half_flat_photo() -> Image.Image:
    image = _flat(size=96)
    image[:, 48:] = _textured(size=96)[:, 48:]  # left half flat grey, right half busy
    return Image.fromarray(image)


def test_a_residual_shows_more_on_the_flat_half_and_the_cap_bounds_it():
    photo = _half_flat_photo()
    residual = torch.randn(3, 48, 48, generator=torch.Generator().manual_seed(0)) * 0.03  # a 2x working copy
    seen = residual_visibility(photo, residual)
    assert seen.shape == (48, 48)
    assert float(seen[:, :24].mean()) > 2 * float(seen[:, 24:].mean())
    gain = cap_gain(seen, 1.0)
    assert float(gain.max()) == 1.0 and float(gain.min()) < 1.0
    assert torch.allclose(gain[seen <= 1.0], torch.ones(()))
    after = residual_visibility(photo, residual * gain)
    # about at the cap: the map mixes neighbours and 8-bit rounding adds its own, so a few values stay above it
    assert float(np.percentile(after.numpy(), 99)) < 1.3
    assert float(after.max()) < 0.6 * float(seen.max())
    assert float(gain[:, :24].mean()) < float(gain[:, 24:].mean())  # the flat half loses more


def test_the_cap_s_spread_gives_a_capped_pixel_s_neighbours_its_gain():
    seen = torch.full((9, 9), 0.5)
    seen[4, 4] = 4.0
    alone, spread = cap_gain(seen, 1.0), cap_gain(seen, 1.0, spread=3)
    assert alone[4, 4] == 0.25 and int((alone < 1).sum()) == 1
    assert torch.equal(spread[3:6, 3:6], torch.full((3, 3), 0.25)) and int((spread < 1).sum()) == 9
    assert Shaping(cap=1.0).spread == 1
    for bad in (0, 2, -1):
        with pytest.raises(ValueError):
            Shaping(cap=1.0, spread=bad)


def test_a_photo_is_measured_on_a_shrunk_copy_above_the_visibility_size(monkeypatch):
    import mbrs_engine.perceptual as perceptual

    photo = _half_flat_photo()
    residual = torch.randn(3, 48, 48, generator=torch.Generator().manual_seed(0)) * 0.03
    monkeypatch.setattr(perceptual, "VISIBILITY_PIXELS", 48 * 48)
    shrunk = residual_visibility(photo, residual)
    small = photo.resize((48, 48), Image.Resampling.BOX)  # the photo at the residual's own size
    expected = visibility_map(small, perceptual.add_residual(small, residual * 127.5))
    assert shrunk.shape == (48, 48) and float(shrunk.max()) > 0
    assert torch.allclose(shrunk, torch.from_numpy(expected))


def test_the_map_worked_out_in_bands_is_the_map_in_one_piece(monkeypatch):
    import mbrs_engine.visibility as visibility_module
    from mbrs_engine.visibility import lab_difference, map_from_lab

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (200, 40, 3), dtype=np.uint8)  # taller than a band and its margins
    changed = _plus(image, rng.integers(-4, 5, (200, 40, 3)))
    whole = map_from_lab(*lab_difference(image, changed))[0, 0].numpy()
    monkeypatch.setattr(visibility_module, "BAND_ROWS", 16)
    calls = []
    banded = visibility_map(image, changed, check=lambda: calls.append(1))
    np.testing.assert_allclose(banded, whole, rtol=1e-5, atol=1e-5)
    assert len(calls) == 13  # 200 rows in bands of 16
    assert 16 + 2 * visibility_module.DEFAULT_MODEL.reach < 200


def test_a_pil_image_is_read_in_bands_and_gives_the_same_map(monkeypatch):
    import mbrs_engine.visibility as visibility

    monkeypatch.setattr(visibility, "BAND_ROWS", 16)  # three bands of crops
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    changed = _plus(image, rng.integers(-3, 4, (40, 30, 3)))
    np.testing.assert_allclose(visibility_map(Image.fromarray(image), Image.fromarray(changed)),
                               visibility_map(image, changed), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="differ in size"):
        visibility_map(Image.fromarray(image), changed[:-1])


def _signed(image: np.ndarray) -> torch.Tensor:
    """An RGB uint8 array as a (1, 3, h, w) batch in the engine's [-1, 1] convention."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_the_training_penalty_is_the_fourth_power_mean_of_the_map_and_differentiable_at_no_change():
    rng = np.random.default_rng(3)
    cover = _textured(48)
    changed = _plus(cover, rng.integers(-4, 5, cover.shape))
    seen = visibility_map(cover, changed)
    expected = float(np.sqrt(np.mean(seen.astype(np.float64) ** 4)))
    assert float(training_penalty(_signed(cover), _signed(changed))) == pytest.approx(expected, rel=1e-3)

    encoded = _signed(cover).requires_grad_(True)     # nothing changed: zero, with a finite gradient
    penalty = training_penalty(_signed(cover), encoded)
    penalty.backward()
    assert float(penalty.detach()) < 1e-5 and torch.isfinite(encoded.grad).all()


def test_the_training_penalty_weighs_a_change_on_a_flat_patch_more_than_on_texture():
    change = np.random.default_rng(4).integers(-3, 4, (64, 64, 3))
    flat, textured = _flat(), _textured()
    on_flat = float(training_penalty(_signed(flat), _signed(_plus(flat, change))))
    on_texture = float(training_penalty(_signed(textured), _signed(_plus(textured, change))))
    assert on_flat > 2 * on_texture > 0


def test_a_wide_blur_at_half_resolution_is_close_to_the_full_one():
    """Known values: a blur keeps a ramp and turns a sine of period P down by exp(-2 pi^2 sigma^2 / P^2)."""
    import math

    from mbrs_engine.visibility import wide_blur

    y, x = torch.meshgrid(torch.arange(121.0), torch.arange(180.0), indexing="ij")  # odd height: padded
    ramp, sine = (0.3 * x + 0.1 * y)[None, None], torch.sin(2 * math.pi * x / 40)[None, None]
    assert wide_blur(sine, 2.0).equal(gaussian_blur(sine, 2.0))  # narrow: the full blur itself
    inner = (..., slice(30, -30), slice(30, -30))
    assert wide_blur(ramp, 8.0).shape == ramp.shape
    assert float((wide_blur(ramp, 8.0) - ramp)[inner].abs().max()) < 1e-3
    expected = math.exp(-2 * math.pi ** 2 * 64 / 1600)
    assert abs(float(wide_blur(sine, 8.0)[inner].abs().max()) - expected) < 0.01
