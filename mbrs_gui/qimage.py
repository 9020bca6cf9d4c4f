"""Conversions from numpy arrays and PIL images to QImage (safe to call on worker threads)."""
from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage

_FORMATS = {1: QImage.Format.Format_Grayscale8, 3: QImage.Format.Format_RGB888, 4: QImage.Format.Format_RGBA8888}


def array_to_qimage(arr: np.ndarray) -> QImage:
    """A QImage owning a copy of a uint8 (H, W), (H, W, 3) or (H, W, 4) array."""
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {arr.dtype}")
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    arr = np.ascontiguousarray(arr)
    height, width = arr.shape[:2]
    image = QImage(arr.data, width, height, width * channels, _FORMATS[channels])
    return image.copy()  # detach from the numpy buffer


def pil_to_qimage(img: Image.Image) -> QImage:
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.mode else "RGB")
    return array_to_qimage(np.asarray(img))


def thumbnail(img: Image.Image, side: int) -> QImage:
    copy = img.copy()
    copy.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return pil_to_qimage(copy)
