"""Metrics: SSIM equals scikit-image's, PSNR known values, 8-bit quantisation, BER, bad inputs."""
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mbrs_engine.metrics import bit_error_rate, image_psnr, psnr, psnr_to_mse, ssim
from mbrs_engine.pixels import from_uint8


def _noisy(img: np.ndarray, amplitude: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(int) + rng.integers(-amplitude, amplitude + 1, img.shape), 0, 255).astype(np.uint8)


def _hwc_batch(images):
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("name, crop", [("astronaut", (slice(0, 97), slice(0, 131))),
                                         ("coffee", (slice(50, 178), slice(100, 228))),
                                         ("chelsea", (slice(None), slice(None)))])
def test_ssim_matches_scikit_image(name, crop):
    a = getattr(data, name)()[crop]
    for amplitude in (2, 12, 40):
        b = _noisy(a, amplitude, seed=amplitude)
        ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255, channel_axis=-1)
        assert abs(ssim(a, b).item() - ref) < 1e-4
        assert abs(psnr(a, b).item() - peak_signal_noise_ratio(a, b, data_range=255)) < 1e-9


def test_batched_equals_one_by_one():
    a = data.astronaut()[:64, :80]
    bs = [_noisy(a, 10, s) for s in range(3)]
    batch = ssim(_hwc_batch([a] * 3), _hwc_batch(bs))
    assert batch.shape == (3,)
    for i, b in enumerate(bs):
        assert batch[i].item() == pytest.approx(ssim(a, b).item(), abs=1e-12)


def test_identical_images():
    a = data.coffee()[:40, :40]
    assert ssim(a, a).item() == pytest.approx(1.0)
    assert math.isinf(psnr(a, a).item())


def test_psnr_known_value():
    a = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    b = a + 1                                         # MSE = 1
    assert psnr(a, b).item() == pytest.approx(20 * math.log10(255))
    assert psnr_to_mse(20 * math.log10(255)) == pytest.approx(1.0)


def test_image_psnr_in_blocks_of_rows_equals_the_whole_image_psnr():
    a = data.astronaut()[:300, :200]  # 300 rows: one full block of 256 and a partial one
    b = _noisy(a, 9, seed=3)
    assert image_psnr(Image.fromarray(a), Image.fromarray(b)) == pytest.approx(psnr(a, b).item(), abs=1e-9)
    assert math.isinf(image_psnr(Image.fromarray(a), Image.fromarray(a)))
    assert image_psnr(Image.fromarray(a).convert("L"), Image.fromarray(a).convert("L")) == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        image_psnr(Image.fromarray(a), Image.fromarray(a[:10]))


def test_float_inputs_are_measured_as_saved_8bit():
    a8 = torch.from_numpy(data.astronaut()[:32, :32].copy()).permute(2, 0, 1).unsqueeze(0)
    a = from_uint8(a8)
    tiny = a + 0.2 / 127.5                            # rounds back to the same 8-bit image
    assert math.isinf(psnr(a, tiny).item())
    over = a8.clone(); over[..., 0, 0] = 255
    unclamped = from_uint8(over); unclamped[..., 0, 0] = 5.0   # way above white: saved as 255
    assert math.isinf(psnr(unclamped, from_uint8(over)).item())


def test_pil_input():
    a = data.astronaut()[:50, :60]
    b = _noisy(a, 5, 1)
    assert psnr(Image.fromarray(a), Image.fromarray(b)).item() == pytest.approx(psnr(a, b).item())


def test_bad_inputs():
    a = data.astronaut()[:20, :20]
    with pytest.raises(ValueError, match="differ"):
        psnr(a, a[:10])
    with pytest.raises(ValueError, match="at least 11"):
        ssim(a[:8, :8], a[:8, :8])
    with pytest.raises(TypeError):
        psnr(a.astype(np.float32), a)


def test_bit_error_rate():
    message = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.float32)
    decoded = torch.tensor([[0.9, 0.1, 0.2, 0.4], [0.6, 0.51, 0.49, 1.3]])
    assert bit_error_rate(decoded, message).tolist() == [0.25, 0.25]
    assert bit_error_rate(np.array([0.7, 0.2]), np.array([1, 0])).tolist() == [0.0]
    with pytest.raises(ValueError):
        bit_error_rate(decoded, message[:, :3])


def test_bit_errors_counts_wrong_hard_decisions_and_refuses_mismatched_lengths():
    import numpy as np
    import pytest

    from mbrs_engine.metrics import bit_errors

    assert bit_errors([0.9, 0.1, 0.6, 0.4], [1, 0, 0, 1]) == 2
    assert bit_errors(np.array([0.5, 0.51]), np.array([0, 1], np.uint8)) == 0   # 0.5 reads as 0
    with pytest.raises(ValueError, match="3 decoded bits against 2"):
        bit_errors([0.1, 0.2, 0.3], [0, 1])
