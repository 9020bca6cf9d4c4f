"""Attacks on PIL images (mbrs attack / eval): parsing, each attack's effect, order, determinism."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from mbrs_engine.attacks import Attack, AttackError, apply_chain, chain_spec, parse_attack, parse_chain


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    return small.resize((160, 120), Image.Resampling.BICUBIC)


def test_parsing():
    assert parse_attack("jpeg:75") == Attack("jpeg", 75.0)
    assert parse_attack(" Crop=0.5 ") == Attack("crop", 0.5)
    assert parse_chain("identity") == ()
    assert parse_chain("jpeg:75+crop:0.8") == (Attack("jpeg", 75.0), Attack("crop", 0.8))
    assert chain_spec(parse_chain("jpeg:75+crop:0.8")) == "jpeg:75+crop:0.8"
    assert chain_spec(()) == "identity"


@pytest.mark.parametrize("text, message", [("warp:5", "unknown attack"), ("jpeg", "needs a value"),
                                           ("jpeg:abc", "not a number"), ("jpeg:0", "quality"),
                                           ("jpeg:75.5", "whole number"), ("crop:0", r"\(0, 1\]"),
                                           ("crop:1.5", r"\(0, 1\]"), ("blur:-1", "sigma"), ("noise:-3", "std"),
                                           ("resize:0", "scale")])
def test_invalid_attacks(text, message):
    with pytest.raises(AttackError, match=message):
        parse_chain(text)


def test_jpeg_is_real_libjpeg(image):
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=60)
    expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert np.array_equal(np.asarray(apply_chain(image, parse_chain("jpeg:60"))), expected)


def test_crop_keeps_the_central_area(image):
    out = apply_chain(image, parse_chain("crop:0.25"))
    assert out.size == (80, 60)
    assert np.array_equal(np.asarray(out), np.asarray(image)[30:90, 40:120])
    assert apply_chain(image, parse_chain("crop:1")).size == image.size


def test_resize_blur_noise(image):
    assert apply_chain(image, parse_chain("resize:0.5")).size == (80, 60)
    assert apply_chain(image, parse_chain("resize:1.5")).size == (240, 180)
    blurred = np.asarray(apply_chain(image, parse_chain("blur:2"))).astype(float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(np.asarray(image).astype(float), axis=1)).mean()
    noisy = np.asarray(apply_chain(image, parse_chain("noise:5"), seed=1)).astype(float)
    assert 3 < (noisy - np.asarray(image)).std() < 6
    again = np.asarray(apply_chain(image, parse_chain("noise:5"), seed=1)).astype(float)
    other = np.asarray(apply_chain(image, parse_chain("noise:5"), seed=2)).astype(float)
    assert np.array_equal(noisy, again) and not np.array_equal(noisy, other)


def test_rgba_in_rgb_out(image):
    assert apply_chain(image.convert("RGBA"), parse_chain("blur:1")).mode == "RGB"
    assert apply_chain(image.convert("L"), ()).mode == "RGB"


def test_crop_at_a_position_with_another_aspect(image):
    arr = np.asarray(image)
    corner = apply_chain(image, parse_chain("crop:0.25,1,0,0"))  # the top-left quarter
    assert np.array_equal(np.asarray(corner), arr[:60, :80])
    far = apply_chain(image, parse_chain("crop:0.25,1,1,1"))  # the bottom-right quarter
    assert np.array_equal(np.asarray(far), arr[60:, 80:])
    wide = apply_chain(image, parse_chain("crop:0.25,1.3333,0.5,0.5"))
    w, h = wide.size
    assert abs((w / h) / (160 / 120) - 4 / 3) < 0.05 and abs(w * h / (160 * 120) - 0.25) < 0.02
    assert parse_attack("crop:0.8") == Attack("crop", (0.8, 1.0, 0.5, 0.5))  # the defaults: centred, same aspect
    assert Attack("crop", (0.8, 1.0, 0.5, 0.5)).spec() == "crop:0.8"
    assert Attack("crop", (0.5, 1.2, 0.0, 1.0)).spec() == "crop:0.5,1.2,0,1"


def test_rotation_trims_to_the_largest_inner_rectangle_without_filled_corners():
    flat = Image.new("RGB", (200, 150), (200, 60, 30))
    for degrees in (-5.0, 2.0, 5.0):
        out = apply_chain(flat, parse_chain(f"rotate:{degrees:g}"))
        w, h = out.size
        theta = np.radians(abs(degrees))
        scale = min(200 / (200 * np.cos(theta) + 150 * np.sin(theta)), 150 / (200 * np.sin(theta) + 150 * np.cos(theta)))
        assert abs(w - 200 * scale) <= 1 and abs(h - 150 * scale) <= 1 and abs(w / h - 200 / 150) < 0.02
        # no black fill left from outside the rotated image
        assert np.asarray(out).reshape(-1, 3).min(0).tolist()[0] > 150
    assert apply_chain(flat, parse_chain("rotate:0")).size == flat.size


def test_rotation_turns_anticlockwise(image):
    marker = Image.new("RGB", (101, 101), (0, 0, 0))
    marker.paste((255, 255, 255), (70, 48, 80, 53))  # a bright dash right of the centre
    out = np.asarray(apply_chain(marker, parse_chain("rotate:30"))).astype(float).mean(2)
    ys, xs = np.nonzero(out > 128)
    cy, cx = (out.shape[0] - 1) / 2, (out.shape[1] - 1) / 2
    assert ys.mean() < cy - 5 and xs.mean() > cx  # moved up: anticlockwise on screen


def test_flip_mirrors_and_is_its_own_inverse(image):
    flipped = apply_chain(image, parse_chain("flip"))
    assert np.array_equal(np.asarray(flipped), np.asarray(image)[:, ::-1])
    assert np.array_equal(np.asarray(apply_chain(image, parse_chain("flip+flip"))), np.asarray(image))
    assert chain_spec(parse_chain("flip+jpeg:90")) == "flip+jpeg:90"
    with pytest.raises(AttackError, match="takes 0 value"):
        parse_attack("flip:1")


def test_a_quarter_turn_turns_anticlockwise_as_pil_does_and_four_make_none(image):
    pixels = np.asarray(image)
    for quarters, op in ((1, Image.Transpose.ROTATE_90), (2, Image.Transpose.ROTATE_180),
                         (3, Image.Transpose.ROTATE_270)):
        turned = apply_chain(image, parse_chain(f"turn:{quarters}"))
        assert np.array_equal(np.asarray(turned), np.asarray(image.transpose(op)))
    assert np.array_equal(np.asarray(apply_chain(image, parse_chain("turn:1"))), np.rot90(pixels))
    assert np.array_equal(np.asarray(apply_chain(image, parse_chain("turn:3+turn:1"))), pixels)
    for bad in ("turn:0", "turn:4", "turn:1.5"):
        with pytest.raises(AttackError):
            parse_attack(bad)


def test_pad_places_the_image_unchanged_on_a_flat_canvas(image):
    arr = np.asarray(image)
    framed = np.asarray(apply_chain(image, parse_chain("pad:0.5")))  # centred, white, the image's aspect
    (ch, cw, _), (h, w, _) = framed.shape, arr.shape
    assert abs(h * w / (ch * cw) - 0.5) < 0.01 and abs((cw / ch) / (w / h) - 1) < 0.01
    top, left = (ch - h) // 2, (cw - w) // 2
    assert np.array_equal(framed[top:top + h, left:left + w], arr)
    canvas = np.ones(framed.shape[:2], bool)
    canvas[top:top + h, left:left + w] = False
    assert (framed[canvas] == 255).all()
    # a letterbox of a 4:3 image to a square, the image at the bottom-left, on black
    square = np.asarray(apply_chain(image, parse_chain("pad:0.75,0.75,0,1,0")))
    assert square.shape == (160, 160, 3) and np.array_equal(square[40:, :160], arr) and (square[:40] == 0).all()
    # a side never shorter than the image's: an aspect the area cannot give pads one side only
    assert apply_chain(image, parse_chain("pad:0.9,2")).size[1] == 120
    assert np.array_equal(np.asarray(apply_chain(image, parse_chain("pad:1"))), arr)
    assert np.asarray(apply_chain(image, parse_chain("pad:0.5,1,0.5,0.5,0.5")))[0, 0].tolist() == [128] * 3
    for bad in ("pad:0", "pad:1.5", "pad:0.5,1,2", "pad:0.5,1,0.5,0.5,2"):
        with pytest.raises(AttackError):
            parse_attack(bad)


def test_a_stretch_resizes_the_width_only(image):
    assert apply_chain(image, parse_chain("stretch:1.5")).size == (240, 120)
    assert apply_chain(image, parse_chain("stretch:0.5")).size == (80, 120)
    # rows of one grey each stay exactly that grey, however the width changes
    rows = np.repeat(np.arange(0, 240, 2, dtype=np.uint8)[:, None, None], 160, 1).repeat(3, 2)
    for factor in (0.6, 1.25):
        out = np.asarray(apply_chain(Image.fromarray(rows), parse_chain(f"stretch:{factor}")))
        assert out.shape == (120, round(160 * factor), 3) and np.array_equal(out, rows[:, :1].repeat(out.shape[1], 1))
    for bad in ("stretch:0.1", "stretch:5", "stretch:1,2"):
        with pytest.raises(AttackError):
            parse_attack(bad)


def test_a_shear_leans_the_verticals_anticlockwise_and_trims_the_sides():
    """A vertical line through the centre leans left at the top and right at the bottom; the sides the shear
    filled are trimmed (no black left), the height kept."""
    line = np.full((200, 300, 3), 200, np.uint8)
    line[:, 148:152] = 0
    out = np.asarray(apply_chain(Image.fromarray(line), parse_chain("shear:5"))).mean(2)
    trim = math.ceil(math.tan(math.radians(5)) * 100)
    assert out.shape == (200, 300 - 2 * trim) and out[:, [0, -1]].min() > 150
    top, bottom = out[10].argmin(), out[189].argmin()
    assert bottom - top == pytest.approx(math.tan(math.radians(5)) * 179, abs=1.5)
    assert np.array_equal(np.asarray(apply_chain(Image.fromarray(line), parse_chain("shear:0"))), line)
    for bad in ("shear:25", "shear:1,2"):
        with pytest.raises(AttackError):
            parse_attack(bad)


def test_a_keystone_brings_the_top_edge_s_ends_together_and_trims_the_sides():
    """Vertical lines a quarter of the width from each side: 150 px apart at the bottom, 150 (1 - 2 K) at the top
    (K = 0.05: 135); the sides it filled are trimmed (no black left), the height kept; a negative K shrinks the
    bottom edge instead."""
    lines = np.full((200, 300, 3), 200, np.uint8)
    lines[:, [74, 75, 224, 225]] = 0

    def spacing(out, row):
        dark = np.flatnonzero(out[row] < 120)
        return dark[dark > out.shape[1] // 2].mean() - dark[dark < out.shape[1] // 2].mean()

    out = np.asarray(apply_chain(Image.fromarray(lines), parse_chain("keystone:0.05"))).mean(2)
    assert out.shape == (200, 300 - 2 * 15) and out[:, [0, -1]].min() > 150
    assert spacing(out, 0) == pytest.approx(135, abs=1.5) and spacing(out, 199) == pytest.approx(150, abs=1.5)
    flipped = np.asarray(apply_chain(Image.fromarray(lines), parse_chain("keystone:-0.05"))).mean(2)
    assert spacing(flipped, 0) == pytest.approx(150, abs=1.5) and spacing(flipped, 199) == pytest.approx(135, abs=1.5)
    assert np.array_equal(np.asarray(apply_chain(Image.fromarray(lines), parse_chain("keystone:0"))), lines)
    for bad in ("keystone:0.3", "keystone:0.1,2"):
        with pytest.raises(AttackError):
            parse_attack(bad)


def test_mixing_attacks_need_the_original(image):
    from mbrs_engine.attacks import is_geometric

    with pytest.raises(AttackError, match="original"):
        apply_chain(image, parse_chain("dropout:0.5"))
    assert apply_chain(image, parse_chain("dropout:0.5"), original=image).size == image.size
    with pytest.raises(AttackError, match="before"):
        apply_chain(image, parse_chain("resize:0.5+cropout:0.5"), original=image)
    assert is_geometric(parse_chain("jpeg:90+rotate:1")) and not is_geometric(parse_chain("jpeg:90+blur:1"))


def test_every_registered_attack_is_a_cli_flag():
    from mbrs_engine.attacks import KINDS
    from mbrs_engine.cli import build_parser

    attack_help = build_parser()._subparsers._group_actions[0].choices["attack"].format_help()
    for name in KINDS:
        assert f"--{name}" in attack_help
