"""Embed-time refinement: fewer bit errors under attacks at the same PSNR, exact PSNR levels, progress and cancel."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from mbrs_engine import Watermarker
from mbrs_engine.attacks import apply_chain, parse_chain
from mbrs_engine.metrics import psnr
from mbrs_engine.refinement import RefineConfig, render_at_psnr, work_copy
from mbrs_engine.resampling import add_residual

from tiny_model import random_crops

ATTACKS = ("identity", "jpeg:50", "resize:0.5", "jpeg:75")


@pytest.fixture(scope="module")
def photo():
    return Image.fromarray(random_crops(1, 160, seed=123)[0]).resize((160, 120), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def wm(tiny_model_path):
    """Refinement is a whole-frame matter: tiles need none."""
    return Watermarker.from_pretrained(tiny_model_path, tiled=False)


def errors_under_attacks(wm, marked, bits) -> list[int]:
    return [int(((wm.decode_bits(apply_chain(marked, parse_chain(a))) > 0.5) != bits).sum()) for a in ATTACKS]


def test_refinement_reads_better_under_attacks_at_the_same_psnr(wm, photo):
    bits = np.random.default_rng(0).integers(0, 2, 256)
    plain = wm.embed_bits(photo, bits, refine=False)
    refined = wm.embed_bits(photo, bits, refine=RefineConfig(steps=30))
    before, after = errors_under_attacks(wm, plain, bits), errors_under_attacks(wm, refined, bits)
    assert sum(before) >= 10, before  # the tiny model misreads this photo without refinement
    assert after[0] == 0 and sum(after) <= sum(before) // 3, (before, after)
    # a model without embed_psnr keeps the unrefined image's PSNR, never going below it
    plain_db, refined_db = float(psnr(photo, plain)[0]), float(psnr(photo, refined)[0])
    assert plain_db <= refined_db <= plain_db + 0.1


def test_embed_psnr_sets_the_level_and_strength_moves_it(tiny_model_path, photo):
    wm = Watermarker.from_pretrained(tiny_model_path, refine=RefineConfig(steps=3))
    wm.embed_psnr = 30.0
    bits = np.random.default_rng(1).integers(0, 2, 256)
    for strength in (1.0, 2.0, 0.5):
        target = wm.strength_psnr(strength)
        assert target == pytest.approx(30.0 - 20 * math.log10(strength))
        measured = float(psnr(photo, wm.embed_bits(photo, bits, strength)))
        assert target <= measured <= target + 0.1, (strength, measured)
    assert wm.embed_bits(photo, bits, 0.0) is not photo and np.array_equal(wm.embed_bits(photo, bits, 0.0), photo)


def test_refinement_is_deterministic_and_keeps_size_mode_and_alpha(wm, photo):
    bits = np.random.default_rng(2).integers(0, 2, 256)
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    config = RefineConfig(steps=4)
    first, second = wm.embed_bits(rgba, bits, refine=config), wm.embed_bits(rgba, bits, refine=config)
    assert first.mode == "RGBA" and first.size == photo.size
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert np.array_equal(np.asarray(first)[..., 3], np.asarray(rgba)[..., 3])


def test_progress_reports_every_step_and_can_cancel(wm, photo):
    bits = np.random.default_rng(3).integers(0, 2, 256)
    seen = []
    wm.embed_bits(photo, bits, refine=RefineConfig(steps=5, patience=99), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 5) for i in range(6)]

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        wm.embed_bits(photo, bits, refine=RefineConfig(steps=5), progress=cancel)


def test_large_images_are_refined_on_a_work_copy(wm):
    big = Image.fromarray(random_crops(1, 160, seed=5)[0]).resize((1200, 900), Image.Resampling.BICUBIC)
    assert work_copy(big, 512).size == (512, 384) and work_copy(big, 2000) is big
    bits = np.random.default_rng(4).integers(0, 2, 256)
    plain = wm.embed_bits(big, bits, refine=False)
    refined = wm.embed_bits(big, bits, refine=RefineConfig(steps=5))
    assert refined.size == big.size
    assert float(psnr(big, plain)[0]) <= float(psnr(big, refined)[0]) <= float(psnr(big, plain)[0]) + 0.1
    assert errors_under_attacks(wm, refined, bits)[0] <= errors_under_attacks(wm, plain, bits)[0]


def test_render_at_psnr_never_goes_below_the_target(photo):
    residual = torch.randn(3, 32, 32) * 4.0
    for target in (28.0, 35.0, 45.0):
        measured = float(psnr(photo, render_at_psnr(photo, residual, target))[0])
        assert target <= measured <= target + 0.1, (target, measured)
    silent = render_at_psnr(photo, residual * 0.0, 40.0)  # nothing to add: the image itself
    assert np.array_equal(np.asarray(silent), np.asarray(photo.convert("RGB")))


def test_upscaled_rows_are_those_rows_of_the_upscaled_residual():
    from mbrs_engine.resampling import upscale_residual, upscaled_rows

    residual = torch.randn(3, 20, 30, generator=torch.Generator().manual_seed(0)) * 4.0
    rows = torch.tensor([0, 7, 8, 99, 150])
    expected = upscale_residual(residual, 333, 151)[:, rows].permute(1, 2, 0)
    assert torch.allclose(upscaled_rows(residual, 333, 151, rows), expected, atol=1e-4)


def test_render_at_psnr_on_a_large_photo_estimates_on_rows_and_lands_in_the_window():
    from mbrs_engine import refinement

    rng = np.random.default_rng(3)
    small = rng.integers(40, 216, (50, 105, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((2100, 1000), Image.Resampling.BICUBIC)  # 2.1 MP: above the sample limit
    assert big.width * big.height > refinement.SAMPLED_PSNR_PIXELS
    residual = torch.randn(3, 40, 84, generator=torch.Generator().manual_seed(3)) * 4.0
    for target in (36.0, 42.0):
        measured = float(psnr(big, render_at_psnr(big, residual, target))[0])
        assert target <= measured <= target + 0.1, (target, measured)
        # the rows' estimate alone already puts the whole photo near the window, the factor 1 far from it
        factor = refinement._sampled_factor(big, residual, target, 0.1)
        assert abs(float(psnr(big, add_residual(big, residual * factor))[0]) - (target + 0.05)) < 0.05
        assert abs(float(psnr(big, add_residual(big, residual))[0]) - (target + 0.05)) > 1.5


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(steps=2.5), dict(learning_rate=0.0), dict(margin=0.5),
                                    dict(attacks=()), dict(attacks=("blur",)), dict(jpeg_quality=(90, 40)),
                                    dict(resize_scale=(0.05, 0.5)), dict(patience=0), dict(work_side=10),
                                    dict(precision="fp8")])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        RefineConfig(**kwargs)


def test_decoder_scores_give_the_same_bits_with_gradients(wm):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out, scores = wm.decoder(x), wm.decoder.scores(x)
    assert torch.equal(out > 0.5, scores > 0.5) and torch.allclose(out, scores.clamp_min(0))
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(wm.decoder.scores(x).sum(), x)
    assert grad.abs().sum() > 0
