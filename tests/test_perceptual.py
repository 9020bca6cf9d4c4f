"""Perceptual shaping of the residual: the soft clip, the chroma gain, energy kept, and what it does to a photo."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mbrs_engine.perceptual import Shaping, chroma_gain, luma, shape, soft_clip


def _heavy_tailed(seed: int = 0) -> torch.Tensor:
    """A residual like the encoder's: mostly small values and a few spikes 30 times the rms."""
    gen = torch.Generator().manual_seed(seed)
    residual = torch.randn(3, 64, 64, generator=gen)
    residual[1, ::16, ::16] = 60.0
    return residual


def test_soft_clip_is_bounded_by_the_knee_keeps_signs_and_small_values():
    residual = _heavy_tailed()
    rms = residual.pow(2).mean().sqrt()
    clipped = soft_clip(residual, 1.5)
    assert clipped.abs().max() <= 1.5 * rms + 1e-5
    assert torch.equal(torch.sign(clipped), torch.sign(residual))
    small = residual.abs() < 0.1 * rms
    assert torch.allclose(clipped[small], residual[small], rtol=0.01, atol=1e-6)
    # monotonic: order of values kept
    flat, out = residual.flatten(), clipped.flatten()
    order = torch.argsort(flat)
    assert bool((out[order][1:] >= out[order][:-1] - 1e-6).all())


def test_chroma_gain_keeps_luma_and_grey_and_scales_the_chroma_part():
    residual = _heavy_tailed(1)
    gained = chroma_gain(residual, 1.5)
    assert torch.allclose(luma(gained), luma(residual), atol=1e-5)
    y = luma(residual)
    assert torch.allclose(gained - y, 1.5 * (residual - y), atol=1e-5)
    grey = torch.randn(1, 8, 8).repeat(3, 1, 1)
    assert torch.allclose(chroma_gain(grey, 3.0), grey, atol=1e-6)
    assert torch.allclose(luma(torch.ones(3, 2, 2)), torch.ones(1, 2, 2))  # the weights sum to 1


def test_shape_keeps_the_energy_and_none_is_the_identity():
    residual = _heavy_tailed(2)
    shaped = shape(residual, Shaping(knee=1.5, chroma=1.5))
    assert torch.allclose(shaped.pow(2).mean(), residual.pow(2).mean(), rtol=1e-4)
    assert shaped.abs().max() < 0.5 * residual.abs().max()  # the spikes are gone
    assert shape(residual, None) is residual
    assert torch.equal(shape(torch.zeros(3, 4, 4), Shaping()), torch.zeros(3, 4, 4))


@pytest.mark.parametrize("kwargs", [{"knee": 0.0}, {"knee": -1.0}, {"chroma": -0.5}, {"chroma": 11.0}])
def test_bad_shaping_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Shaping(**kwargs)


def test_a_shaped_photo_has_no_speckles_at_the_same_psnr_and_reads_back():
    """The shipped model on a photo: shaping lowers the largest pixel change at the same PSNR, and the mark reads
    in place and after JPEG 75."""
    import io

    import skimage.data

    from mbrs_engine import Watermarker
    from mbrs_engine.metrics import image_psnr

    photo = Image.fromarray(skimage.data.astronaut())
    shaped, plain = Watermarker.from_pretrained(), Watermarker.from_pretrained(shaping=None)
    changes = {}
    for name, wm in (("shaped", shaped), ("plain", plain)):
        marked = wm.embed(photo, "© Jane Doe")
        assert image_psnr(photo, marked) >= 40.0
        changes[name] = np.abs(np.asarray(marked, np.int16) - np.asarray(photo, np.int16)).max()
    assert changes["shaped"] < 0.5 * changes["plain"], changes
    marked = shaped.embed(photo, "© Jane Doe")
    buffer = io.BytesIO()
    marked.save(buffer, "JPEG", quality=75)
    assert shaped.decode(marked).message == "© Jane Doe"
    assert shaped.decode(Image.open(buffer)).message == "© Jane Doe"


def test_the_ladder_layer_shapes_and_caps_a_residual_as_embedding_does():
    """Ladder (the trainer's noise layer) applies a rung as embedding does: uncapped rungs are the soft clip kept
    at the same energy; a cap brings the visibility map down to about the cap, taking more from a flat half than
    from a textured one."""
    from mbrs_engine.noise import Ladder
    from mbrs_engine.visibility import map_from_lab, to_lab

    gen = torch.Generator().manual_seed(0)
    cover = torch.zeros(3, 64, 128)
    cover[:, :, 64:] = torch.rand(1, 64, 64, generator=gen) * 1.6 - 0.8       # flat grey | grey texture
    encoded = cover + torch.randn(3, 64, 128, generator=gen) * 0.06

    def seen(image):
        lab = to_lab(((cover + 1) / 2)[None])
        return map_from_lab(lab, to_lab(((image + 1) / 2)[None]) - lab)[0, 0]

    assert torch.equal(Ladder.shape_one(encoded, cover, None), encoded)
    knee6 = Ladder.shape_one(encoded, cover, Shaping(6.0))
    assert torch.allclose(knee6 - cover, shape(encoded - cover, Shaping(6.0)), atol=1e-6)
    assert seen(encoded).max() > 2.5
    capped = Ladder.shape_one(encoded, cover, Shaping(cap=1.0))
    # one pass, as embedding: near the cap (the map's bands and eroded masking reach a few pixels, so the uncapped
    # neighbours' change leaks into a capped pixel)
    assert torch.quantile(seen(capped).flatten(), 0.999) < 1.7
    kept = (capped - cover).pow(2).mean(dim=(0, 1)).sqrt() / shape(encoded - cover, Shaping()).pow(2).mean(
        dim=(0, 1)).sqrt()
    assert kept[:64].mean() < 0.8 and kept[64:].mean() > 0.99
    batch = torch.stack([encoded] * 4).requires_grad_()
    Ladder()(batch, torch.stack([cover] * 4)).sum().backward()   # usable when the encoder trains too
    assert batch.grad is not None and batch.grad.abs().sum() > 0


def test_a_ladder_of_caps_draws_only_those_capped_rungs():
    """Ladder(caps=[c]) caps every image at c (as Shaping(cap=c) does); the default draws the embedding ladder."""
    from mbrs_engine.noise import Ladder
    from mbrs_engine.perceptual import LADDER

    gen = torch.Generator().manual_seed(1)
    cover = torch.rand(3, 32, 32, generator=gen) * 0.2 - 0.1          # nearly flat: every cap takes energy
    encoded = cover + torch.randn(3, 32, 32, generator=gen) * 0.06
    expected = Ladder.shape_one(encoded, cover, Shaping(cap=0.7))
    out = Ladder(caps=[0.7])(torch.stack([encoded] * 3), torch.stack([cover] * 3))
    assert all(torch.allclose(o, expected, atol=1e-6) for o in out)
    assert Ladder().rungs == LADDER and Ladder(caps=[0.7, 1]).rungs == (Shaping(cap=0.7), Shaping(cap=1.0))
    for bad in ([], [0.0], [-1.0], 0.7):
        with pytest.raises(ValueError):
            Ladder(caps=bad)


def test_wrong_message_bits_counts_the_folded_message_cells_only():
    from mbrs_engine.shaping_check import wrong_message_bits

    T, g = 5, 4
    grid = (torch.rand(2 * T, 3 * T, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    grid = grid[:T, :T].repeat(2, 3)  # a tiled grid
    scores = grid * 0.8 + 0.1  # every cell right
    assert wrong_message_bits(scores, grid, T, g) == 0
    assert wrong_message_bits(1.0 - scores, grid, T, g) == g * g
    pilot_wrong = scores.clone()
    pilot_wrong[g::T, :] = 1.0 - pilot_wrong[g::T, :]  # the pilot row of every tile: not message bits
    assert wrong_message_bits(pilot_wrong, grid, T, g) == 0


def test_the_check_reads_whole_tiles_near_the_centre():
    from mbrs_engine.shaping_check import CHECK_TILES, check_region

    assert CHECK_TILES == 4
    assert check_region(34, 51, 17) == (0, 0, 34, 51)  # two tiles down, three across: all of them
    assert check_region(170, 85, 17) == (51, 0, 119, 68)  # ten tiles down, five across: the middle four
    assert check_region(20, 30, 17) == (0, 0, 17, 17)  # a single whole tile


@pytest.mark.parametrize("first_passing", range(7))  # 6: none passes
def test_the_ladder_search_checks_the_least_visible_rung_first_then_bisects(monkeypatch, first_passing):
    """The search finds the first rung that passes (passing rungs are the last ones), checking rung 0 first: one
    check when it passes, at most four for the 6 rungs; when none passes, the uncapped rung tried that read with
    the fewest wrong bits."""
    from mbrs_engine import shaping_check
    from mbrs_engine.perceptual import LADDER

    checked = []
    monkeypatch.setattr(shaping_check, "rung",
                        lambda raw, shaping, amplitude, rgb, maps=None: torch.tensor([LADDER.index(shaping)]))

    def wrong_bits(decoder, rgb, residual, grid, T, g, quality):
        index = int(residual[0])
        checked.append(index)
        return 0 if index >= first_passing else 99 - index  # a later rung reads with fewer wrong bits

    monkeypatch.setattr(shaping_check, "wrong_bits_after_jpeg", wrong_bits)
    picked = int(shaping_check.choose_shaping(None, None, None, 17, 16, LADDER, 0.02, None)[0])
    assert picked == min(first_passing, len(LADDER) - 1)
    assert checked[0] == 0 and len(checked) == len(set(checked)) <= 4
    assert (len(checked) == 1) == (first_passing == 0)


def test_the_check_keeps_a_visibility_cap_on_a_photo_and_drops_it_on_grass():
    """The shipped model: a photo keeps one of the ladder's capped rungs (the first three); dense grass reads
    with far too many errors after every check, so an uncapped rung is chosen."""
    import skimage.data

    from mbrs_engine import Watermarker, payload, tiling
    from mbrs_engine.perceptual import LADDER
    from mbrs_engine.shaping_check import choose_shaping, rung

    wm = Watermarker.from_pretrained()
    bits = torch.as_tensor(payload.encode_text("© Jane Doe", wm.message_length, None)).float()
    flags = [shaping is not None and shaping.cap is not None for shaping in LADDER]
    capped = sum(flags)
    assert flags == [True] * capped + [False] * 2
    chosen = {}
    for name in ("coffee", "grass"):
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        with torch.inference_mode():
            work = tiling.working_copy(photo, wm.tile_size(photo))
            raw = tiling.tiled_residual(wm.encoder, work, bits, wm.config)
            grid = tiling.message_grid(bits, wm.config, work.shape[2] // 8, work.shape[3] // 8)[0, 0]
            picked = choose_shaping(wm.decoder, raw, grid, 17, 16, LADDER, 0.02, photo)
            rungs = [rung(raw, shaping, 0.02, photo) for shaping in LADDER]
        assert float(picked.pow(2).mean().sqrt()) <= 0.02 * 1.001  # a cap only takes energy away
        chosen[name] = next(i for i, rung in enumerate(rungs) if torch.allclose(picked, rung))
    assert chosen["coffee"] < capped <= chosen["grass"]  # a visibility cap; none


def test_a_capped_embedding_is_saved_as_checked_and_an_uncapped_one_at_the_budget():
    """The shipped model: coffee takes a capped rung and is saved exactly as the check read it (no louder: the
    cap and the rounding raise its PSNR above the budget); grass takes an uncapped one, scaled to the budget."""
    import skimage.data

    from mbrs_engine import Watermarker
    from mbrs_engine.metrics import image_psnr
    from mbrs_engine.resampling import add_residual

    wm = Watermarker.from_pretrained()
    budget = wm.strength_psnr(1.0)
    for name, capped in (("coffee", True), ("grass", False)):
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        prepared = wm.prepare(photo, "© Jane Doe")
        marked = prepared.render(1.0)
        measured = image_psnr(photo, marked)
        if capped:
            assert measured > budget + 0.5
            assert np.array_equal(np.asarray(marked), np.asarray(add_residual(photo, prepared.residual)))
        else:
            assert budget <= measured <= budget + 0.1


def test_a_residual_saved_as_checked_is_scaled_only_down_to_the_budget():
    from mbrs_engine.metrics import image_psnr
    from mbrs_engine.resampling import add_residual
    from mbrs_engine.watermarker import PreparedEmbedding

    photo = Image.fromarray(np.random.default_rng(2).integers(40, 216, (120, 160, 3), dtype=np.uint8))
    residual = torch.randn(3, 60, 80, generator=torch.Generator().manual_seed(2)) * 4.0  # 37.9 dB: too loud
    assert 40.0 <= image_psnr(photo, PreparedEmbedding(photo, None, residual, 40.0, as_checked=True).render()) \
        <= 40.1
    quiet = PreparedEmbedding(photo, None, residual * 0.3, 40.0, as_checked=True)  # 48.0 dB
    for strength in (1.0, 2.0):  # 48.0 and 42.3 dB, 40 and 34 allowed: s times the residual, as it is
        expected = add_residual(photo, residual * 0.3 * strength)
        assert np.array_equal(np.asarray(quiet.render(strength)), np.asarray(expected))
