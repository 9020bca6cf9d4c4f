"""Flat borders: the part of an image inside a flat canvas is found, and read as an image."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mbrs_engine import Watermarker, borders
from mbrs_engine.attacks import apply_chain, pad_box, parse_chain

from tiny_model import random_crops


@pytest.fixture(scope="module")
def photo():
    return Image.fromarray(random_crops(1, 240, seed=5)[0]).resize((300, 200), Image.Resampling.BICUBIC)


@pytest.mark.parametrize("pad", ["0.5,1,0.5,0.5,1", "0.6,0.75,0,1,0", "0.8,1.3,0.9,0.2,0.4", "0.9,1,1,0,0.7"])
@pytest.mark.parametrize("after", ["", "+jpeg:80", "+fit:900+jpeg:85"])
def test_the_part_inside_a_flat_canvas_is_found_within_a_few_pixels(photo, pad, after):
    values = tuple(float(v) for v in pad.split(","))
    framed = apply_chain(photo, parse_chain(f"pad:{pad}{after}"))
    height, width, top, left = pad_box(photo.height, photo.width, *values[:4])
    scale = framed.width / width
    truth = np.array([left, top, left + photo.width, top + photo.height]) * scale
    box = borders.inner_box(framed)
    assert box is not None and np.abs(np.array(box) - truth).max() <= 3, (box, truth)


def test_images_without_a_flat_border_have_none(photo):
    assert borders.inner_box(photo) is None
    assert borders.inner_box(Image.new("RGB", (80, 60), (30, 30, 30))) is None  # flat throughout: nothing inside
    noisy = np.asarray(photo).astype(int) + np.random.default_rng(0).integers(-3, 4, (200, 300, 3))
    assert borders.inner_box(Image.fromarray(noisy.clip(0, 255).astype(np.uint8))) is None
    # a flat edge narrower than LEAST_BORDER of the side is the photo's own
    assert borders.inner_box(apply_chain(photo, parse_chain("pad:0.99,1,0,0.5,1"))) is None


@pytest.mark.parametrize("pad", ["0.6,1,0.2,0.8,1", "0.5,0.75,1,0,0"])
def test_a_small_photo_marked_in_the_whole_frame_is_read_on_a_canvas(pad):
    wm = Watermarker.from_pretrained()
    thumbnail = Image.fromarray(random_crops(1, 200, seed=8)[0]).resize((160, 128), Image.Resampling.BICUBIC)
    assert wm.tile_size(thumbnail) is None  # too small to tile: the whole frame
    framed = apply_chain(wm.embed(thumbnail, "on a canvas"), parse_chain(f"pad:{pad}+fit:800+jpeg:85"))
    result = wm.decode(framed)
    assert result.message == "on a canvas" and "inside flat borders" in result.frame
    left, top, right, bottom = borders.inner_box(framed)
    (corners,) = result.outlines  # the whole frame read, where it lies in the image
    assert corners == ((left, top), (right, top), (right, bottom), (left, bottom))


def test_a_tiled_photo_in_a_frame_is_read_in_place_inside_it():
    import skimage.data

    wm = Watermarker.from_pretrained()
    framed = apply_chain(wm.embed(Image.fromarray(skimage.data.coffee()), "framed"),
                         parse_chain("pad:0.7,1,0.3,0.6,0+jpeg:90"))  # a black frame, no resize: no search needed
    result = wm.decode(framed)
    assert result.message == "framed" and result.frame.startswith("tiles of") and "inside flat borders" in result.frame
    left, top, right, bottom = borders.inner_box(framed)
    assert all(left - 1 <= x <= right + 1 and top - 1 <= y <= bottom + 1 for outline in result.outlines
               for x, y in outline)
