"""Flat borders: the part of an image inside a flat canvas (a frame, a letterbox, a photo pasted on a page).

A photo put on a larger canvas of one colour (``pad`` in :mod:`mbrs_engine.attacks`) keeps its watermark, but
the frame the embedding laid it out in is now a rectangle inside the image.  The tile search finds tiles there as
anywhere; a photo marked in the whole-frame layout (too small to tile) can only be read once that rectangle is
known.  :func:`inner_box` finds it from the canvas itself: the lines at each edge of the image that are flat in
the colour of that edge's outermost line, as many as run on, before any other hypothesis is tried; the decoder
then reads the part inside as it reads an image (:meth:`Watermarker.decode`).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

#: A line is flat when at least half its pixels are within this many 8-bit levels of the edge's colour (in every
#: channel) and no more than :data:`FLAT_OUTLIERS` of them differ by 4 times as much (a JPEG of a flat canvas stays
#: within 1-3 levels but where a block holds the photo's edge).
FLAT_LEVELS = 4.0
FLAT_OUTLIERS = 0.02
#: A border counts when it is at least this share of the image's side (a photo's own flat edge, an overexposed
#: sky's first rows, mostly is not).
LEAST_BORDER = 0.02
#: At most this many pixels of a line are looked at (evenly spaced).
SAMPLES = 1024


def _flat_run(lines: np.ndarray) -> int:
    """How many of ``lines`` (n, length, 3; uint8), from the first, are flat in the first one's median colour."""
    colour = np.median(lines[0], axis=0).astype(np.int16)
    done, chunk = 0, 8
    while done < len(lines):  # chunks of lines, doubling up to 256: most runs end at once, a canvas's runs on
        difference = np.abs(lines[done:done + chunk].astype(np.int16) - colour).max(axis=-1)
        flat = ((difference <= FLAT_LEVELS).mean(axis=1) >= 0.5) & \
            ((difference > 4 * FLAT_LEVELS).mean(axis=1) <= FLAT_OUTLIERS)
        if not flat.all():
            return done + int(np.argmin(flat))
        done, chunk = done + len(flat), min(2 * chunk, 256)
    return len(lines)


def inner_box(rgb: Image.Image) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the part of ``rgb`` inside flat borders (:func:`_flat_run` at each edge);
    None when no border is at least :data:`LEAST_BORDER` of its side or nothing is left inside.  The lines next
    to the image inside, blurred into the canvas by a resize or a JPEG, may be counted as image (about 2 px)."""
    rgb = rgb if rgb.mode == "RGB" else rgb.convert("RGB")
    width, height = rgb.size
    edges = ((0, 0, width, 1), (0, height - 1, width, height), (0, 0, 1, height), (width - 1, 0, width, height))
    if not any(_flat_run(np.asarray(rgb.crop(edge)).reshape(1, -1, 3)) for edge in edges):
        return None  # (most images: the whole image is not looked at)
    pixels = np.asarray(rgb)
    across, down = -(-width // SAMPLES), -(-height // SAMPLES)  # every line, but only SAMPLES pixels of each
    rows, columns = pixels[:, ::across], pixels[::down].transpose(1, 0, 2)
    top, bottom, left, right = _flat_run(rows), _flat_run(rows[::-1]), _flat_run(columns), _flat_run(columns[::-1])
    if top + bottom >= height or left + right >= width:
        return None  # flat throughout: no image inside
    if max(top / height, bottom / height, left / width, right / width) < LEAST_BORDER:
        return None
    return left, top, width - right, height - bottom
