"""The eight ways an image can be turned by quarter turns and mirrored, as the decoder undoes them.

An *orientation* is an index into :data:`ORIENTATIONS`: the transpose that,
applied to an edited image, brings back the orientation it was marked in (0:
none).  A photo turned a quarter anticlockwise to portrait is read with
``ROTATE_270``; a mirrored one with ``FLIP_LEFT_RIGHT``.  The same index
names the transpose of a PIL image (:func:`orient`), of the last two axes of
a tensor (:func:`orient_tensor`), and the map of a point of the oriented
image back to the image (:func:`point_back`), so that where a reading was
found can be drawn on the image as the user has it.
"""
from __future__ import annotations

import torch
from PIL import Image

T = Image.Transpose

#: (name, PIL transpose or None) of each orientation, index 0 the image as it is.  The first four are turns.
ORIENTATIONS: tuple[tuple[str, T | None], ...] = (
    ("as it is", None),
    ("turned back 90° anticlockwise", T.ROTATE_90),
    ("turned back 180°", T.ROTATE_180),
    ("turned back 90° clockwise", T.ROTATE_270),
    ("mirrored back", T.FLIP_LEFT_RIGHT),
    ("flipped back upside down", T.FLIP_TOP_BOTTOM),
    ("transposed back", T.TRANSPOSE),
    ("transposed back across the other diagonal", T.TRANSVERSE),
)

#: The index of the left-right mirror.
MIRRORED = 4

_SWAPS = {T.ROTATE_90, T.ROTATE_270, T.TRANSPOSE, T.TRANSVERSE}
_REFLECTS = {T.FLIP_LEFT_RIGHT, T.FLIP_TOP_BOTTOM, T.TRANSPOSE, T.TRANSVERSE}


def count(mirrors: bool = True) -> int:
    """How many orientations there are: all eight, or the four turns when mirrored images are not read."""
    return len(ORIENTATIONS) if mirrors else sum(not reflects(o) for o in range(len(ORIENTATIONS)))


def name(orientation: int) -> str:
    return ORIENTATIONS[orientation][0]


def swaps_sides(orientation: int) -> bool:
    """Whether the orientation exchanges width and height (a quarter turn or a transpose)."""
    return ORIENTATIONS[orientation][1] in _SWAPS


def reflects(orientation: int) -> bool:
    """Whether the orientation mirrors (an anticlockwise turn of the image is then a clockwise one after it)."""
    return ORIENTATIONS[orientation][1] in _REFLECTS


def inverse(orientation: int) -> int:
    """The orientation that undoes ``orientation`` (a quarter turn undoes the other; the rest undo themselves)."""
    op = ORIENTATIONS[orientation][1]
    undo = {T.ROTATE_90: T.ROTATE_270, T.ROTATE_270: T.ROTATE_90}.get(op, op)
    return next(o for o, (_, other) in enumerate(ORIENTATIONS) if other is undo)


def oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if swaps_sides(orientation) else (width, height)


def orient(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` transposed by the orientation (itself for 0)."""
    op = ORIENTATIONS[orientation][1]
    return image if op is None else image.transpose(op)


def orient_tensor(x: torch.Tensor, orientation: int) -> torch.Tensor:
    """The same transpose as :func:`orient`, of the last two axes (rows, columns) of ``x``."""
    op = ORIENTATIONS[orientation][1]
    if op is None:
        return x
    if op is T.FLIP_LEFT_RIGHT:
        return x.flip(-1)
    if op is T.FLIP_TOP_BOTTOM:
        return x.flip(-2)
    if op is T.TRANSPOSE:
        return x.transpose(-1, -2)
    if op is T.TRANSVERSE:
        return x.transpose(-1, -2).flip(-1, -2)
    return torch.rot90(x, {T.ROTATE_90: 1, T.ROTATE_180: 2, T.ROTATE_270: 3}[op], (-2, -1))  # anticlockwise


def point_back(x: float, y: float, width: int, height: int, orientation: int) -> tuple[float, float]:
    """Where the point (x, y) of the image ``width`` x ``height`` oriented by ``orientation`` lies in the image
    itself (pixel edges: 0 to width)."""
    op = ORIENTATIONS[orientation][1]
    if op is None:
        return x, y
    if op is T.FLIP_LEFT_RIGHT:
        return width - x, y
    if op is T.FLIP_TOP_BOTTOM:
        return x, height - y
    if op is T.ROTATE_180:
        return width - x, height - y
    if op is T.TRANSPOSE:
        return y, x
    if op is T.TRANSVERSE:
        return width - y, height - x
    if op is T.ROTATE_90:  # the image's (x, y) went to (y, width - x)
        return width - y, x
    return y, height - x  # ROTATE_270: the image's (x, y) went to (height - y, x)


def part(image: Image.Image, box: tuple[float, float, float, float], orientation: int) -> Image.Image:
    """The part ``box`` (left, top, right, bottom) of ``image`` oriented, cut out before it is oriented (only
    that part is transposed, not the whole image)."""
    return orient(image.crop(box_back(box, *image.size, orientation)), orientation)


def box_back(box: tuple[float, float, float, float], width: int, height: int,
             orientation: int) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) of the image whose orientation is ``box`` of the oriented image."""
    (x0, y0), (x1, y1) = (point_back(box[0], box[1], width, height, orientation),
                          point_back(box[2], box[3], width, height, orientation))
    return (round(min(x0, x1)), round(min(y0, y1)), round(max(x0, x1)), round(max(y0, y1)))
