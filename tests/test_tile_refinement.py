"""Refining tiles that read with little margin: views where the tiles are, the check, the refinement, the gate."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import mbrs_engine.watermarker as watermarker_module
from mbrs_engine import Watermarker, tiling
from mbrs_engine import tile_refinement as tr
from mbrs_engine.refinement import RefineConfig
from mbrs_engine.shaping_check import choose_shaping
from mbrs_engine.tile_refinement import TileRefineConfig


@pytest.fixture(scope="module")
def shipped():
    return Watermarker.from_pretrained()


def tiled(wm, photo):
    """(residual, grid, size) of ``photo`` carrying random bits: the shaped residual the watermarker saves."""
    bits = torch.from_numpy(np.random.default_rng(1).integers(0, 2, wm.message_length).astype(np.float32))
    size = wm.tile_size(photo)
    with torch.inference_mode():
        raw, grid, amplitude = wm.tiled_raw(photo, bits, size)
        residual = choose_shaping(wm.decoder, raw, grid, tiling.cells(wm.config), wm.config.grid_size,
                                  wm.shapings, amplitude, photo)
    return residual.clone(), grid.clone(), size


@pytest.fixture(scope="module")
def grass():
    import skimage.data

    return Image.fromarray(skimage.data.grass()).convert("RGB")  # 512 x 512: two tiles across


@pytest.fixture(scope="module")
def coffee():
    import skimage.data

    return Image.fromarray(skimage.data.coffee())  # 600 x 400


@pytest.mark.parametrize("bad", [dict(steps=0), dict(learning_rate=0.0), dict(margin=-0.1),
                                 dict(wholes=0, crops=0, turns=0), dict(crop_area=(0.5, 0.2)), dict(aspect_change=0.5),
                                 dict(max_angle=90.0), dict(jpeg_quality=(0, 90)), dict(jitter=2.0),
                                 dict(scale_jitter=0.5), dict(angle_jitter=5.0)])
def test_settings_out_of_range_are_refused(bad):
    with pytest.raises(ValueError):
        TileRefineConfig(**bad)


@pytest.mark.parametrize("kind", ["whole", "small", "crop", "turn"])
def test_a_view_reads_the_cells_it_holds_where_the_working_copy_has_them(shipped, coffee, kind):
    """Views hold whole cells inside what they show, a tile or more and at most VIEW_TILES tiles a side; unedited
    (no JPEG loss, no jitter, no turn) a view's pixels are the working copy's there."""
    residual, grid, size = tiled(shipped, coffee)
    exact = TileRefineConfig(jpeg_quality=(100, 100), jitter=0.0, scale_jitter=0.0, angle_jitter=0.0,
                             max_angle=0.0 if kind == "turn" else 5.0)
    views = tr._Views(shipped.decoder, coffee, size, grid, shipped.config, exact)
    work, T, cell = tiling.working_copy(coffee, size), tiling.cells(shipped.config), shipped.config.cell_pixels
    rng = np.random.default_rng(4)
    drawn = views.draw(coffee, rng, (kind,) * 6)
    assert len(drawn) == 6
    if kind == "small":  # the copy at a quarter, enlarged back: the working copy blurred as the stand-in is
        work = tr._blurred(work[0], min(views.scale) * min(tr.GUARD_SHRINKS))[None]
    for view in drawn:
        top, left, bottom, right = view.cells
        assert 0 <= top and 0 <= left and bottom <= grid.shape[0] and right <= grid.shape[1]
        assert T <= bottom - top <= tr.VIEW_TILES * T and T <= right - left <= tr.VIEW_TILES * T
        got = tr.view_input(view, views.scale, shipped.config)
        want = work[:, :, top * cell:bottom * cell, left * cell:right * cell]
        assert got.shape == want.shape
        # 1 % of the range: resampling alone (JPEG at 100 kept); at a quarter the stand-in's blur is PIL's
        # antialiased resize approximated (measured 0.021)
        assert (got - want).abs().mean() < (0.035 if kind == "small" else 0.02)


def test_the_check_counts_the_wrong_bits_of_views_where_the_tiles_are(shipped, coffee):
    residual, grid, size = tiled(shipped, coffee)
    config = TileRefineConfig()
    marked = tr.check_errors(shipped.decoder, coffee, residual, size, grid, shipped.config, config)
    unmarked = tr.check_errors(shipped.decoder, coffee, residual * 0.0, size, grid, shipped.config, config)
    assert marked <= 3  # a photo with margin to spare: measured 0
    assert 70 <= unmarked <= 186  # no mark: about half the 256 message bits wrong


def test_refinement_has_a_texture_s_views_read_better_at_the_same_energy(shipped, grass):
    """Grass needs all the mark's energy (no cap) and its crops and turns read with too many wrong bits; refined,
    the check's views (drawn apart from the refinement's) read with fewer, at about the same rms."""
    residual, grid, size = tiled(shipped, grass)
    config = TileRefineConfig()
    assert tr.check_errors(shipped.decoder, grass, residual, size, grid, shipped.config, config) > config.check_errors
    seen = []
    refined = tr.refine_tiles(shipped.decoder, grass, residual, size, grid, shipped.config, config,
                              progress=lambda step, steps: seen.append((step, steps)))
    # measured where the tiles are exactly, after JPEG 85
    exact = TileRefineConfig(jpeg_quality=(85, 85), jitter=0.0, scale_jitter=0.0, angle_jitter=0.0)
    before, after = (tr.check_errors(shipped.decoder, grass, r, size, grid, shipped.config, exact)
                     for r in (residual, refined))
    assert after <= 0.8 * before, (before, after)
    # its fine part rescaled to its energy, the coarse part kept (the render brings the whole to the PSNR)
    assert float(refined.pow(2).mean().sqrt()) == pytest.approx(float(residual.pow(2).mean().sqrt()), rel=0.05)
    assert seen == [(step, config.steps) for step in range(config.steps + 1)]


def test_a_refinement_can_be_cancelled_from_its_progress(shipped, coffee):
    residual, grid, size = tiled(shipped, coffee)

    def cancel(step, steps):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.refine_tiles(shipped.decoder, coffee, residual, size, grid, shipped.config, TileRefineConfig(), cancel)


def test_a_refinement_is_kept_only_where_it_reads_better(shipped, grass, coffee, monkeypatch):
    """Refined where the check fails, kept where the check then reads fewer wrong bits and the photo in place no
    more; else the residual as it was.  Grass is refined and kept; coffee reads with margin: left alone."""
    residual, grid, size = tiled(shipped, coffee)
    config = TileRefineConfig(steps=2)
    assert tr.refined_where_needed(shipped.decoder, coffee, residual, size, grid, shipped.config, config) is residual
    residual, grid, size = tiled(shipped, grass)
    kept = tr.refined_where_needed(shipped.decoder, grass, residual, size, grid, shipped.config, TileRefineConfig())
    assert kept is not residual
    monkeypatch.setattr(tr, "refine_tiles", lambda decoder, rgb, residual, *args: residual * 0.0)  # a bad one
    assert tr.refined_where_needed(shipped.decoder, grass, residual, size, grid, shipped.config, config) is residual


def test_the_watermarker_refines_only_tiles_that_keep_all_their_energy(shipped, coffee, monkeypatch):
    """Tiles a visibility cap turned down read with margin to spare and are never refined; refine=False or a
    whole-frame config skips it, a TileRefineConfig is used as given, and the progress is passed on."""
    calls = []

    def refine(decoder, rgb, residual, size, grid, config, refine_config, progress):
        calls.append((refine_config, progress))
        return residual

    monkeypatch.setattr(watermarker_module, "refined_where_needed", refine)
    bits = np.random.default_rng(2).integers(0, 2, shipped.message_length)
    uncapped = Watermarker(shipped.encoder, shipped.decoder, shipped.config, shaping=None,
                           embed_psnr=shipped.embed_psnr)

    def progress(step, steps):
        pass

    shipped.prepare_bits(coffee, bits)  # coffee takes a visibility cap
    assert calls == []
    uncapped.prepare_bits(coffee, bits, progress=progress)
    assert calls == [(uncapped.tile_refine, progress)]
    calls.clear()
    uncapped.prepare_bits(coffee, bits, refine=False)
    uncapped.prepare_bits(coffee, bits, refine=RefineConfig(steps=3))
    assert calls == []
    mine = TileRefineConfig(steps=3)
    uncapped.prepare_bits(coffee, bits, refine=mine)
    assert calls == [(mine, None)]
