"""Adversary (discriminator): tells cover images from encoded ones; returns one logit per image."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvBNReLU


class Adversary(nn.Module):
    """ConvBNReLU(3->C), 3 x ConvBNReLU(C->C), global average pool, Linear(C->1)."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            ConvBNReLU(3, channels), *(ConvBNReLU(channels, channels) for _ in range(3)),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
        )
        self.logit = nn.Linear(channels, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(image)).squeeze(1)
