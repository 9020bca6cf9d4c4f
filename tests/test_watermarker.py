"""The Watermarker API with a tiny model trained in the session: bits and text round trips at any size and mode,
the detection test on clean images, the crop search, keys, strength, and bad arguments."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mbrs_engine import Watermarker
from mbrs_engine import payload as P
from mbrs_engine import borders, tiling
from mbrs_engine.metrics import psnr
from mbrs_engine.nets import NetworkConfig, build_from_config
from mbrs_engine.pixels import pil_to_tensor
from mbrs_engine.frames import CORNER_SEARCH, Frame, SearchConfig, frame_view
from mbrs_engine.resampling import _add_exact, _add_fast, add_residual_region, resize_matrix, to_model_size

from tiny_model import random_crops


def random_bits(length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, length)


def ber(soft: np.ndarray, bits: np.ndarray) -> float:
    return float(np.mean((soft > 0.5) != bits))


def test_properties(tiny_wm):
    assert (tiny_wm.image_size, tiny_wm.message_length, tiny_wm.capacity) == (32, 256, 13)
    assert tiny_wm.layout.bch_t == 14
    assert not tiny_wm.encoder.training and not tiny_wm.decoder.training
    assert "tiny" in repr(tiny_wm)


@pytest.mark.parametrize("size", [(32, 32), (97, 61), (128, 32), (32, 128), (61, 97), (400, 300)])
def test_bits_round_trip_at_any_size(tiny_wm, sample_images, size):
    errors = []
    for i, img in enumerate(sample_images):
        cover = img.resize(size, Image.Resampling.BICUBIC)
        bits = random_bits(256, i)
        marked = tiny_wm.embed_bits(cover, bits)
        assert marked.size == size and marked.mode == "RGB"
        soft = tiny_wm.decode_bits(marked)
        assert soft.shape == (256,) and soft.dtype == np.float32 and 0 <= soft.min() and soft.max() <= 1
        errors.append(ber(soft, bits))
    assert max(errors) <= 0.04, errors  # a few bits: well within what BCH corrects (14 of 256)


def test_native_size_runs_the_network_directly(tiny_wm, sample_images):
    cover = sample_images[0]
    assert cover.size == (32, 32)
    bits = random_bits(256, 0)
    marked = tiny_wm.embed_bits(cover, bits, refine=False)
    x = pil_to_tensor(cover)
    with torch.inference_mode():
        encoded = tiny_wm.encoder(x, torch.tensor(bits, dtype=torch.float32)[None])
    expected = ((encoded + 1) * 127.5).clamp(0, 255).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(marked).astype(float) - expected).max() <= 1  # float rounding at .5 only


@pytest.mark.parametrize("text", ["hello", "héllo wörld", "日本語", "🙂🙂🙂", "", "x" * 13])
def test_text_round_trip(tiny_wm, sample_images, text):
    for img in sample_images[:3]:
        result = tiny_wm.decode(tiny_wm.embed(img, text))
        assert result.detected and result.message == text
        assert result.p_value < 1e-20 and result.frame == "full" and result.crc_ok


def test_too_long_text(tiny_wm, sample_images):
    with pytest.raises(P.PayloadTooLongError, match="at most 13"):
        tiny_wm.embed(sample_images[0], "this is far too long for 256 bits")


def test_clean_images_are_not_detected(tiny_wm):
    """Natural crops at several sizes and pure noise images: never detected (bound: 1e-6 per image)."""
    images = [Image.fromarray(c) for c in random_crops(12, 96, seed=99)]
    images += [img.resize((97, 61)) for img in images[:6]]
    rng = np.random.default_rng(3)
    images += [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(6)]
    images += [Image.new("RGB", (50, 40), c) for c in ((0, 0, 0), (255, 255, 255), (128, 128, 128))]
    for img in images:
        result = tiny_wm.decode(img)
        assert not result.detected and result.message is None
        # 10 frames, the tiles read in place (2 x 2 and 4 x 4 when the image holds more than 2) in each of the 8
        # orientations, every (lattice, phase, roll) of the tile search (the two peaks the pilot's template
        # confirms, upright and turned, each refined too, two autocorrelation peaks, the template's period, and
        # the rule's for 96 x 96 only: the others are smaller than two 34-px tiles, so not tiled, and the first
        # lattice searched upright in the two orientations probed), read over 2 x 2 tiles and over every tile around
        # (the tiny model: 2-pixel cells, so 2 x 2 phases)
        in_place = {(96, 96): 1, (64, 64): 1}.get(img.size, 2)  # 97 x 61 and 50 x 40 hold more than 2 across
        assert len(tiling.in_place_tiles(*img.size, tiny_wm.config)) == in_place
        lattices = 10 if img.size == (96, 96) else 9
        assert lattices * 2 * 2 * 17 * 17 * 2 == tiling.hypotheses(*img.size, tiny_wm.config)
        # and, where an edge is flat (a dark sky), the part inside read as an image: its whole frame and its tiles
        # in place
        box = borders.inner_box(img)
        inside = 0 if box is None else 1 + len(tiling.in_place_tiles(box[2] - box[0], box[3] - box[1], tiny_wm.config))
        assert result.hypotheses == 10 + 8 * in_place + tiling.hypotheses(*img.size, tiny_wm.config) + inside


def test_secret_key(tiny_wm, sample_images):
    marked = tiny_wm.embed(sample_images[1], "keyed", key="s3cret")
    assert tiny_wm.decode(marked, key="s3cret").message == "keyed"
    for key in (None, "wrong"):
        result = tiny_wm.decode(marked, key=key)
        assert not result.detected and result.message is None


def test_strength(tiny_wm, sample_images):
    cover = sample_images[3]
    bits = random_bits(256, 1)
    weak, strong = (tiny_wm.embed_bits(cover, bits, s) for s in (0.5, 1.5))
    assert float(psnr(cover, weak)[0]) > float(psnr(cover, strong)[0]) + 5
    assert np.array_equal(np.asarray(tiny_wm.embed_bits(cover, bits, 0.0)), np.asarray(cover))
    for bad in (-1, 11, float("nan"), "1", True):
        with pytest.raises(ValueError, match="strength"):
            tiny_wm.embed_bits(cover, bits, bad)


def test_modes(tiny_wm, sample_images):
    cover = sample_images[3]
    rgba = cover.convert("RGBA")
    alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, cover.size[::-1], dtype=np.uint8))
    rgba.putalpha(alpha)
    marked = tiny_wm.embed(rgba, "alpha")
    assert marked.mode == "RGBA" and np.array_equal(np.asarray(marked.getchannel("A")), np.asarray(alpha))
    assert tiny_wm.decode(marked).message == "alpha"
    for mode in ("L", "P", "CMYK", "LA"):
        out = tiny_wm.embed(cover.convert(mode), "mode")
        assert out.mode == ("RGBA" if mode == "LA" else "RGB") and out.size == cover.size
        assert tiny_wm.decode(out).message == "mode"


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (3, 200), (15, 15)])
def test_images_too_small_to_carry_a_watermark_are_refused_but_decode(tiny_wm, size):
    from mbrs_engine.watermarker import MIN_SIDE, ImageTooSmallError

    assert tiny_wm.min_side == MIN_SIDE == 16  # the tiny model is 32 px: half of it is 16
    img = Image.new("RGB", size, (90, 120, 150))
    with pytest.raises(ImageTooSmallError, match="at least 16 pixels on the shorter side"):
        tiny_wm.embed(img, "tiny")
    assert tiny_wm.decode(img).detected is False  # reading one is fine: nothing is found


def test_the_smallest_accepted_image_embeds(tiny_wm, sample_images):
    img = sample_images[5].resize((tiny_wm.min_side, 60))
    assert tiny_wm.embed(img, "ok").size == img.size


def test_reads_back_and_existing_mark(tiny_wm, sample_images):
    img = sample_images[3]
    marked = tiny_wm.embed(img, "hello", key="k")
    assert tiny_wm.reads_back(marked, "hello", key="k")
    assert not tiny_wm.reads_back(marked, "hello") and not tiny_wm.reads_back(marked, "other", key="k")
    assert tiny_wm.existing_mark(img) is None and tiny_wm.existing_mark(marked) is None  # a key hides the mark
    assert tiny_wm.existing_mark(marked, key="k").message == "hello"
    assert tiny_wm.existing_mark(tiny_wm.embed(img, "open")).message == "open"


def test_bad_bits_and_images(tiny_wm, sample_images):
    img = sample_images[0]
    with pytest.raises(ValueError, match="expected 256 bits"):
        tiny_wm.embed_bits(img, [0, 1])
    with pytest.raises(ValueError, match="0 or 1"):
        tiny_wm.embed_bits(img, np.full(256, 2))
    assert tiny_wm.embed_bits(img, np.ones(256, dtype=bool)).size == img.size
    with pytest.raises(TypeError, match="PIL image"):
        tiny_wm.decode_bits(np.zeros((32, 32, 3)))


# ---------------------------------------------------------------- crop search


def test_frame_view_rebuilds_the_original_frame(tiny_wm, sample_images):
    """Placing a central crop back in its presumed frame lines up with the original to a fraction of a level."""
    original = sample_images[5].resize((240, 180))
    reference = pil_to_tensor(to_model_size(original, 32))[0]
    for area, box in ((0.8, (12, 9, 228, 171)),):
        crop = original.crop(box)
        view = frame_view(pil_to_tensor(to_model_size(crop, 128))[0], Frame(area, "center"), 32, "mean")
        inner = slice(4, 28)
        diff = (view - reference)[:, inner, inner].abs().mean() * 127.5
        assert diff < 4, diff
        wrong = frame_view(pil_to_tensor(to_model_size(crop, 128))[0], Frame(area, "top-left"), 32, "mean")
        assert (wrong - reference)[:, inner, inner].abs().mean() * 127.5 > 2 * diff


def test_frame_view_fills(tiny_wm):
    view = torch.zeros(3, 64, 64) + torch.tensor([0.5, -0.5, 0.0])[:, None, None]
    mean = frame_view(view, Frame(0.5, "top-left"), 32, "mean")
    assert torch.allclose(mean, view[:, :32, :32], atol=1e-5)
    grey = frame_view(view, Frame(0.5, "top-left"), 32, "grey")
    assert torch.allclose(grey[:, -1, -1], torch.zeros(3), atol=1e-6)
    assert torch.allclose(grey[:, 0, 0], view[:, 0, 0], atol=1e-5)
    edge = frame_view(view, Frame(0.5, "bottom-right"), 32, "edge")
    assert torch.allclose(edge, view[:, :32, :32], atol=1e-5)


def test_search_finds_crops_the_full_frame_misses(frame_wm, sample_images):
    from mbrs_engine.attacks import apply_chain, parse_chain

    found_with, found_without = 0, 0
    for i, crop in enumerate(random_crops(12, 300, seed=7)):
        marked = frame_wm.embed(Image.fromarray(crop).resize((240, 180)), "crop me")
        cropped = apply_chain(marked, parse_chain("crop:0.8"))
        with_search = frame_wm.decode(cropped)
        without = frame_wm.decode(cropped, search=False)
        found_with += with_search.message == "crop me"
        found_without += without.message == "crop me"
        if with_search.detected and not without.detected:
            assert with_search.frame in ("crop 0.9 center", "crop 0.8 center", "crop 0.7 center")  # 0.8 or a neighbour
    assert found_with > found_without


def test_search_p_value_is_bonferroni_corrected(frame_wm, sample_images):
    marked = frame_wm.embed(sample_images[2], "p")
    once = frame_wm.decode(marked, search=False)
    searched = frame_wm.decode(marked)
    corners = frame_wm.decode(marked, search=CORNER_SEARCH)
    assert (once.hypotheses, searched.hypotheses, corners.hypotheses) == (1, 10, 42)
    assert searched.p_value == pytest.approx(10 * once.p_value)
    assert corners.p_value == pytest.approx(42 * once.p_value)


def test_a_mirrored_image_is_found_as_the_mirrored_frame(frame_wm, sample_images):
    from mbrs_engine.attacks import apply_chain, parse_chain

    found = 0
    for img in sample_images[3:]:
        marked = frame_wm.embed(img, "mirror")
        flipped = apply_chain(marked, parse_chain("flip"))
        result = frame_wm.decode(flipped)
        assert result.frame.endswith("mirrored") or not result.detected
        found += result.message == "mirror"
        assert frame_wm.decode(flipped, search=SearchConfig(mirrored=False)).message is None  # the mirror is needed
    assert found == len(sample_images[3:])


def test_search_config_validation():
    assert len(SearchConfig().frames()) == 10 and len(CORNER_SEARCH.frames()) == 42
    assert len(SearchConfig(mirrored=False).frames()) == 5
    with pytest.raises(ValueError):
        SearchConfig(area_fractions=(1.2,))
    with pytest.raises(ValueError):
        SearchConfig(anchors=("middle",))
    with pytest.raises(ValueError):
        SearchConfig(fill="blue")


# ---------------------------------------------------------------- construction and resampling


def test_wraps_networks_in_memory_and_raw_bits_models():
    config = NetworkConfig(image_size=32, message_length=16, channels=16, blocks=1)
    encoder, decoder, _ = build_from_config(config)
    wm = Watermarker(encoder, decoder)
    assert wm.config == config and not wm.encoder.training and not wm.decoder.training
    assert wm.networks == (encoder, decoder)  # kept as given (to save), the running copies folded
    img = Image.new("RGB", (50, 40), (100, 100, 100))
    assert wm.embed_bits(img, random_bits(16, 0), strength=0.1).size == (50, 40)
    assert wm.decode_bits(img).shape == (16,)
    with pytest.raises(P.PayloadUnsupportedError, match="raw bits only"):
        wm.capacity
    with pytest.raises(P.PayloadUnsupportedError):
        wm.embed(img, "x")
    with pytest.raises(P.PayloadUnsupportedError):
        wm.decode(img)


def test_from_pretrained_by_name(tiny_model_path, tmp_path):
    import shutil

    from mbrs_engine.model_files import user_models_dir

    user = user_models_dir()
    user.mkdir(parents=True)
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_model_path.with_suffix(suffix), user / f"tiny{suffix}")
    wm = Watermarker.from_pretrained("tiny")
    assert wm.name == "tiny" and wm.metadata["source"] == "user"


@pytest.mark.parametrize("out_size, in_size", [(61, 32), (300, 32), (8, 32), (1, 32), (32, 32), (4000, 128)])
def test_resize_matrix_matches_pil_bicubic(out_size, in_size):
    signal = np.random.default_rng(0).normal(size=(in_size, 7)).astype(np.float32)
    pil = np.asarray(Image.fromarray(signal, "F").resize((7, out_size), Image.Resampling.BICUBIC))
    ours = (resize_matrix(out_size, in_size) @ torch.from_numpy(signal)).numpy()
    assert np.abs(pil - ours).max() < 1e-4


def test_fast_exact_and_region_residual_paths_agree():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (123, 201, 3), dtype=np.uint8))
    residual = torch.from_numpy(rng.normal(0, 8, (3, 32, 32)).astype(np.float32))
    whole, box = (0, 0, 201, 123), (17, 5, 150, 99)
    marked = np.asarray(_add_fast(img, residual, whole))
    assert np.array_equal(marked, np.asarray(_add_exact(img, residual, whole)))
    for add in (_add_fast, _add_exact, add_residual_region):  # a part is the same pixels as the whole
        assert np.array_equal(np.asarray(add(img, residual, box)), marked[5:99, 17:150])


def test_decode_with_any_finds_the_model_that_marked_and_keeps_the_bound(tiny_wm, sample_images):
    from mbrs_engine.watermarker import decode_with_any

    from tiny_model import CONFIG

    torch.manual_seed(5)
    encoder, decoder, _ = build_from_config(CONFIG)  # an untrained model of the same shape: reads nothing
    other = Watermarker(encoder, decoder, CONFIG, name="other")
    marked = tiny_wm.embed(sample_images[4], "which")
    alone = tiny_wm.decode(marked)
    result = decode_with_any(marked, [other, tiny_wm])
    assert result.message == "which" and result.model == tiny_wm.name
    assert result.p_value == pytest.approx(min(1.0, 2 * alone.p_value)) and result.hypotheses == 2 * alone.hypotheses
    assert result.threshold == alone.threshold
    clean = decode_with_any(sample_images[4], [other, tiny_wm])
    assert not clean.detected and clean.model == "other"
