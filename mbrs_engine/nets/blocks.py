"""Building blocks of the MBRS networks: conv/BN/ReLU units and SE bottleneck blocks.

Shapes and layer choices follow the reference implementation exactly (see
``shared/reference/mbrs-reference-facts.md``) so that parameter counts match.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (padding 1, with bias) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ConvTBNReLU(nn.Sequential):
    """2x2 transposed convolution with stride 2 (doubles H and W) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SqueezeExcitation(nn.Module):
    """Channel attention: global average pool -> 1x1 conv (C -> C/r) -> ReLU -> 1x1 conv -> sigmoid."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, pool=None) -> torch.Tensor:
        """``pool``: a function giving the per-channel average (N, C, 1, 1) to gate by in place of x's own (the
        average of a full map of which x is a compact part: :mod:`mbrs_engine.nets.periodic`)."""
        return x * (self.gate(x) if pool is None else self.gate[1:](pool(x)))


class SEBottleneck(nn.Module):
    """Bottleneck residual block with squeeze-excitation (in -> out, optional stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, reduction: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            SqueezeExcitation(out_channels, reduction),
        )
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, pool=None) -> torch.Tensor:
        """``pool``: as :meth:`SqueezeExcitation.forward`."""
        body = self.body(x) if pool is None else self.body[-1](self.body[:-1](x), pool)
        return self.relu(body + self.shortcut(x))


def se_stack(channels: int, count: int) -> nn.Sequential:
    """``count`` SE blocks at stride 1 keeping ``channels`` (the reference's ``SENet(C, C, n)``)."""
    return nn.Sequential(*(SEBottleneck(channels, channels) for _ in range(count)))
