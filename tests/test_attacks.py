"""Attacks on PIL images (mbrs attack / eval): parsing, each attack's effect, order, determinism."""
from __future__ import annotations

import io

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


@pytest.mark.parametrize("text, message", [("rotate:5", "unknown attack"), ("jpeg", "needs a value"),
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
