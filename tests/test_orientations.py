"""The eight orientations: the same transpose of an image, a tensor and a point, and a lattice seen in each."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from mbrs_engine import orientations
from mbrs_engine.tiling import Lattice


@pytest.fixture
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8))


@pytest.mark.parametrize("orientation", range(8))
def test_an_orientation_is_the_same_transpose_of_an_image_a_tensor_and_a_point(image, orientation):
    pixels, oriented = np.array(image), np.asarray(orientations.orient(image, orientation))
    as_tensor = orientations.orient_tensor(torch.from_numpy(pixels).permute(2, 0, 1), orientation)
    assert np.array_equal(as_tensor.permute(1, 2, 0).numpy(), oriented)
    width, height = orientations.oriented_size(*image.size, orientation)
    assert oriented.shape[:2] == (height, width)
    for j in range(height):  # every pixel's centre maps back to the pixel it came from
        for i in range(width):
            x, y = orientations.point_back(i + 0.5, j + 0.5, *image.size, orientation)
            assert np.array_equal(pixels[int(y), int(x)], oriented[j, i])


@pytest.mark.parametrize("orientation", range(8))
def test_a_box_maps_back_to_the_part_that_orients_to_it(orientation):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    box = (3, 5, 20, 31)
    part = image.crop(orientations.box_back(box, *image.size, orientation))
    assert np.array_equal(np.asarray(orientations.orient(part, orientation)),
                          np.asarray(orientations.orient(image, orientation).crop(box)))
    assert np.array_equal(np.asarray(orientations.part(image, box, orientation)),
                          np.asarray(orientations.orient(part, orientation)))


def test_the_eight_are_distinct_and_the_first_four_turn_only():
    pixels = np.arange(12).reshape(3, 4)
    seen = {orientations.orient_tensor(torch.from_numpy(pixels), o).numpy().tobytes() for o in range(8)}
    assert len(seen) == 8 and orientations.count() == 8 and orientations.count(mirrors=False) == 4
    assert [orientations.reflects(o) for o in range(8)] == [False] * 4 + [True] * 4
    assert orientations.ORIENTATIONS[orientations.MIRRORED][1] is Image.Transpose.FLIP_LEFT_RIGHT


def test_a_lattice_read_turned_or_mirrored_is_seen_so_in_the_oriented_image():
    """A quarter turn exchanges the tiles' width and height; a mirror turns their angle the other way."""
    lattice = Lattice(200.0, 2.0, 1.01)
    assert lattice.oriented() == lattice
    turned = Lattice(200.0, 2.0, 1.01, orientation=1).oriented()
    assert turned.period == pytest.approx(202.0) and turned.aspect == pytest.approx(1 / 1.01) and turned.angle == 2.0
    mirrored = Lattice(200.0, 2.0, 1.01, orientation=orientations.MIRRORED).oriented()
    assert (mirrored.period, mirrored.angle, mirrored.aspect) == (200.0, -2.0, 1.01)
    assert not lattice.near(Lattice(200.0, 2.0, 1.01, orientation=2))


@pytest.mark.parametrize("orientation", range(8))
def test_a_sheared_lattice_oriented_has_the_same_tile_sides_mapped_back(orientation):
    """The tiles' width and height vectors of the oriented lattice, mapped back to the image, are the lattice's
    own (up to their sign, and exchanged by a quarter turn), for a lattice turned, stretched and sheared."""
    def sides(lattice):  # the width and height vectors in the image's pixels (y down; angles anticlockwise)
        across, down = math.radians(lattice.angle), math.radians(lattice.angle + lattice.shear)
        q = lattice.period * lattice.aspect
        return np.array([lattice.period * math.cos(across), -lattice.period * math.sin(across)]), \
            np.array([q * math.sin(down), q * math.cos(down)])

    lattice = Lattice(200.0, 2.0, 1.3, orientation=orientation, shear=3.0)
    origin = np.array(orientations.point_back(0.0, 0.0, 1000, 800, orientation))
    back = [np.array(orientations.point_back(*v, 1000, 800, orientation)) - origin for v in sides(lattice.oriented())]
    want = list(sides(replace(lattice, orientation=0)))
    if orientations.swaps_sides(orientation):
        want.reverse()
    for got, expected in zip(back, want):
        assert min(np.abs(got - expected).max(), np.abs(got + expected).max()) < 1e-9, (got, expected)


@pytest.mark.parametrize("orientation", range(8))
def test_the_inverse_undoes_an_orientation(orientation):
    pixels = torch.arange(12).reshape(3, 4)
    back = orientations.orient_tensor(orientations.orient_tensor(pixels, orientation),
                                      orientations.inverse(orientation))
    assert torch.equal(back, pixels)
