"""MBRS encoder: message processor (optionally with the diffusion block) and SE-block image encoder.

``Encoder(image, message)`` returns the encoded image itself (not a residual;
no tanh, no clamp), as the reference does.  The watermark residual is
``encoded - image``; the strength factor scales it outside the network.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvBNReLU, ConvTBNReLU, se_stack
from .config import NetworkConfig
from .periodic import periodic_features


class MessageProcessor(nn.Module):
    """Expands L bits to a C x H x H feature map (paper, Sec. 3.1)."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        C, k, g = cfg.channels, cfg.upsamplings, cfg.grid_size
        self.grid = g
        self.cell = cfg.cell_pixels
        # Diffusion block: a fully connected layer spreads every bit over the whole grid.
        self.diffuse = nn.Linear(cfg.message_length, g * g) if cfg.diffusion else None
        first_stack = 1 if cfg.diffusion else max(cfg.blocks - k, 1)
        self.body = nn.Sequential(
            ConvBNReLU(1, C),
            *(ConvTBNReLU(C, C) for _ in range(k)),
            se_stack(C, first_stack),
            se_stack(C, cfg.blocks),
        )

    def forward(self, message: torch.Tensor) -> torch.Tensor:
        if self.diffuse is not None:
            message = self.diffuse(message)
        return self.body(message.reshape(-1, 1, self.grid, self.grid))

    def grid_features(self, grid: torch.Tensor, period: int | None = None) -> torch.Tensor:
        """Features of bits already laid out on a grid of cells (N, 1, rows, cols) of any size (plain model only).
        ``period``: the grid repeats every ``period`` cells down and across from its top-left corner; the
        features are then worked out on one period and the borders (:mod:`mbrs_engine.nets.periodic`)."""
        if self.diffuse is not None:
            raise ValueError("the diffusion block does not lay bits out on a grid")
        if period is None:
            return self.body(grid)
        return periodic_features(self.body, grid, period, self.cell)


class Encoder(nn.Module):
    """Cover image (N,3,H,H) in [-1,1] + message (N,L) in {0,1} -> encoded image (N,3,H,H)."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        C = cfg.channels
        self.config = cfg
        self.image_branch = nn.Sequential(ConvBNReLU(3, C), se_stack(C, cfg.blocks))
        self.message_processor = MessageProcessor(cfg)
        self.fuse = ConvBNReLU(2 * C, C)
        self.to_image = nn.Conv2d(C + 3, 3, 1)

    def forward(self, image: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        return self._combine(image, self.message_processor(message.to(image.dtype)))

    def encode_grid(self, image: torch.Tensor, grid: torch.Tensor, period: int | None = None) -> torch.Tensor:
        """The encoded image for an image (N, 3, h, w) of any size whose message is laid out on a grid of cells
        (N, 1, h / c, w / c), c = H / g: how :mod:`mbrs_engine.tiling` repeats a message over a photo
        (``period``: as :meth:`MessageProcessor.grid_features`)."""
        return self._combine(image, self.message_processor.grid_features(grid.to(image.dtype), period))

    def _combine(self, image: torch.Tensor, message_features: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.image_branch(image), message_features], dim=1)
        return self.to_image(torch.cat([self.fuse(features), image], dim=1))
