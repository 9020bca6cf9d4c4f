"""Base class of every noise layer, and the Identity layer.

A noise layer is an ``nn.Module`` over a batch that follows the engine's pixel
convention (see :mod:`mbrs_engine.pixels`: float ``(N, 3, H, W)`` RGB in
``[-1, 1]``).  It is called as ``layer(encoded, cover)``: ``encoded`` is the
watermarked batch, ``cover`` the original batch (only layers that mix the two,
such as Cropout and Dropout, read it; the others accept ``None``).  The output
has the same shape as ``encoded`` unless the layer's job is to change it
(``Resize``).  Random choices use the global torch generator unless the layer
says otherwise, so seeding torch (as the trainer does) makes them reproducible.

``spec()`` gives back the layer as text that :func:`mbrs_engine.noise.parse_noise`
reads, so a training configuration can be saved as plain text.
"""
from __future__ import annotations

import torch
from torch import nn


class NoiseLayer(nn.Module):
    """Common interface: ``forward(encoded, cover=None) -> noised``."""

    #: True for layers that need the cover image (Cropout, Dropout).
    needs_cover: bool = False

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def spec(self) -> str:
        """The layer as text in the reference's syntax, e.g. ``"Crop(0.035)"``."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return self.spec()

    def _require_cover(self, encoded: torch.Tensor, cover: torch.Tensor | None) -> torch.Tensor:
        if cover is None:
            raise ValueError(f"{type(self).__name__} needs the cover image: call layer(encoded, cover)")
        if cover.shape != encoded.shape:
            raise ValueError(f"cover shape {tuple(cover.shape)} differs from encoded {tuple(encoded.shape)}")
        return cover


class Identity(NoiseLayer):
    """No distortion (the paper's noise-free layer)."""

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        return encoded

    def spec(self) -> str:
        return "Identity()"
