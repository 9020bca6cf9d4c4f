"""The one pixel convention of the engine, and conversions to and from 8-bit.

Every tensor image inside ``mbrs_engine`` (networks, noise layers, metrics'
float inputs) is a float tensor of shape ``(N, 3, H, W)``, RGB, with values in
``[-1, 1]``: ``x = u8 / 127.5 - 1``.  This is the reference implementation's
range; ``0`` is mid-grey.  8-bit images are ``uint8`` tensors ``(N, 3, H, W)``
or PIL images.  Quantising to 8 bit clamps to [0, 255] and rounds to the
nearest level (exact halves to even, as ``torch.round``), which is what
saving an image does.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float image(s) in [-1, 1] to uint8 in [0, 255], as saving would."""
    return ((x.detach().float() + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)


def from_uint8(u8: torch.Tensor) -> torch.Tensor:
    """uint8 image(s) in [0, 255] to float32 in [-1, 1]."""
    return u8.float() / 127.5 - 1.0


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round a float image to the nearest 8-bit level, keeping the [-1, 1] range."""
    return from_uint8(to_uint8(x)).to(x.dtype)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image to a float tensor (1, 3, H, W) in [-1, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return from_uint8(torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0))


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """A float tensor (3, H, W) or (1, 3, H, W) in [-1, 1] to an RGB PIL image."""
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
        x = x[0]
    return Image.fromarray(to_uint8(x).permute(1, 2, 0).cpu().numpy(), "RGB")
