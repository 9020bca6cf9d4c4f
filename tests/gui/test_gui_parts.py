"""The GUI's non-widget parts: the engine's prepared watermark at any strength and its PSNR, the attack chain, the noise pool."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mbrs_engine.metrics import psnr, ssim
from mbrs_engine.noise import parse_noise
from mbrs_engine.watermarker import PreparedEmbedding
from mbrs_gui.attack_chain import Chain, ChainError, Step
from mbrs_gui.imaging import Residual, fit_size, paper_difference, visibility_heat
from mbrs_gui.noise_pool import build_spec, selection_from_spec


def _prepared(rng, shape=(60, 80), grid=16, levels=4.0, target=None):
    original = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    watermark = torch.from_numpy(rng.normal(0, levels, (3, grid, grid)).astype(np.float32))
    return PreparedEmbedding(Image.fromarray(original), None, watermark, target)


@pytest.fixture
def residual(rng):
    return Residual(_prepared(rng))


def test_render_is_the_engines_and_psnr_is_of_the_render(residual, rng):
    assert np.array_equal(residual.render(1.0), np.asarray(residual.prepared.render(1.0)))
    assert np.array_equal(residual.render(0.0), residual.original)
    for strength in (0.1, 0.5, 1.0, 1.7, 3.0):
        rendered = residual.render(strength)
        assert np.array_equal(rendered, np.asarray(residual.prepared.render(strength)))
        assert residual.psnr(strength) == pytest.approx(float(psnr(residual.original, rendered)[0]), abs=1e-9)
        assert residual.psnr_estimate(strength) == pytest.approx(residual.psnr(strength), abs=0.5)
    assert residual.psnr(2.0) < residual.psnr(1.0)
    refined = Residual(_prepared(rng, target=38.0))
    for strength in (0.5, 1.0, 2.0):
        target = 38.0 - 20 * np.log10(strength)
        assert refined.psnr_estimate(strength) == pytest.approx(target)
        assert target <= refined.psnr(strength) <= target + 0.1
    # a capped tiled residual saved as checked: its own PSNR when above the target, else scaled down to the target
    own = residual.psnr(1.0)
    for offset in (-3.0, 3.0):
        checked = Residual(PreparedEmbedding(residual.prepared.rgb, None, residual.prepared.residual, own + offset,
                                             as_checked=True))
        for strength in (0.5, 1.0, 2.0):
            target = own + offset - 20 * np.log10(strength)
            assert checked.psnr_estimate(strength) == pytest.approx(checked.psnr(strength), abs=0.5)
            assert target <= checked.psnr(strength) <= max(target + 0.1, residual.psnr(strength))


def test_ssim_exact_for_small_images_and_tiles_for_large_ones(residual, rng):
    value, sampled = residual.ssim(1.5)
    assert not sampled
    assert value == pytest.approx(float(ssim(residual.original, residual.render(1.5))[0]))
    big = Residual(_prepared(rng, shape=(1200, 1000)))
    tiles = big.ssim_tiles()
    assert tiles and all(0 <= x <= 1000 - w and 0 <= y <= 1200 - h for x, y, w, h in tiles)
    assert big.ssim(1.0)[1] is True


def test_preview_is_screen_sized_and_matches_the_full_render(residual):
    preview = residual.preview(max_side=40)
    assert preview.size == fit_size(80, 60, 40) == (40, 30)
    marked, difference = preview.render(1.0)
    full = np.asarray(Image.fromarray(residual.render(1.0)).resize((40, 30), Image.Resampling.BOX), dtype=int)
    assert np.abs(marked.astype(int) - full).mean() < 1.0
    assert difference.shape == (30, 40) and difference.max() == 255


def test_visibility_of_the_render_and_of_the_preview(residual):
    figure, seen = residual.visibility(1.0)
    assert seen.shape == (60, 80) and figure > 0
    stronger, _ = residual.visibility(2.0)
    assert 1.5 < stronger / figure < 2.5  # about in proportion to the strength
    residual.last_visibility = (1.0, figure)
    assert residual.visibility_estimate(2.0) == pytest.approx(2 * figure)
    preview = residual.preview(max_side=40)
    assert preview.seen.shape == (30, 40)
    assert preview.heat(1.0).shape == (30, 40, 3)


def test_the_visibility_view_tints_only_what_may_show():
    original = np.full((2, 3, 3), 100, np.uint8)
    seen = np.array([[0.0, 0.4, 1.0], [2.0, 5.0, 0.0]], np.float32)
    heat = visibility_heat(original, seen).astype(int)
    assert (heat[0, 0] == heat[0, 0, 0]).all() and (heat[0, 0] == heat[0, 1]).all()  # grey where under half
    assert heat[0, 2, 0] > heat[0, 2, 2] + 40  # yellow-ish: red and green above blue
    assert heat[1, 1, 0] > heat[1, 1, 1] + 100  # red where plainly seen
    assert (heat[1, 0] == heat[1, 1]).all()  # 2 and more: the same red


def test_paper_difference_is_min_max_normalised_luma():
    delta = np.zeros((4, 4, 3), np.int16)
    delta[0, 0] = (10, 10, 10)
    delta[1, 1] = (-5, -5, -5)
    out = paper_difference(delta)
    assert out[0, 0] == 255 and out[2, 2] == 0 and out[1, 1] == 128


def test_attack_chain_applies_engine_attacks_in_order(photo):
    img = Image.open(photo).convert("RGB")
    chain = Chain([Step("jpeg", (50,)), Step("crop", (0.25,)), Step("brightness", (0.1, 1.0))])
    out = chain.apply(img)
    assert out.size == (img.width // 2, img.height // 2)
    assert chain.apply(img).tobytes() == out.tobytes()  # seeded: reproducible
    with pytest.raises(ChainError, match="original"):
        Chain([Step("dropout")]).apply(img)
    assert Chain([Step("dropout", (0.5,))]).apply(img, original=img).size == img.size
    with pytest.raises(ChainError, match="before"):
        Chain([Step("resize", (0.5,)), Step("cropout", (0.5,))]).apply(img, original=img)


def test_noise_pool_round_trips_the_presets():
    for spec in ("Combined([JpegMask(),RealJpeg(50),Identity()])",
                 "Combined([JpegMask(),RealJpeg(50),Identity(),Crop(0.7),Resize(0.5, back=True)])",
                 "Crop(0.0225)"):
        selection, extra = selection_from_spec(spec)
        assert not extra
        assert parse_noise(build_spec(selection)).spec() == parse_noise(spec).spec()
    selection, extra = selection_from_spec("Combined([KorniaJpeg(50),GaussianBlur(1.5)])")
    assert selection == {"blur": 1.5} and extra == ["KorniaJpeg(50)"]
    with pytest.raises(ValueError, match="at least one"):
        build_spec({})


def test_the_pool_editor_offers_every_attack_with_a_training_layer():
    from mbrs_engine.attacks import KINDS
    from mbrs_engine.noise import canonical_spec
    from mbrs_gui.noise_pool import POOL

    keys = {e.key for e in POOL}
    trained = {name for name, kind in KINDS.items() if kind.training is not None}
    assert trained <= keys and {"jpeg", "crop", "resize", "blur", "noise", "cropout", "dropout"} <= trained
    for entry in POOL:
        canonical_spec(entry.spec())                          # every default is a valid layer
        if entry.key in KINDS:
            assert entry.label == KINDS[entry.key].label and entry.help == KINDS[entry.key].help
