"""MBRS decoder: SE blocks that bring the (noised) image down to the message grid.

Outputs L real values per image; the decoded bit is ``value > 0.5`` (the
reference trains them with MSE against the 0/1 message).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvBNReLU, SEBottleneck, se_stack
from .config import NetworkConfig


class Decoder(nn.Module):
    """Image (N,3,H,H) in [-1,1] -> message estimate (N,L)."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        C, k = cfg.channels, cfg.upsamplings
        self.config = cfg
        layers: list[nn.Module] = [ConvBNReLU(3, C), SEBottleneck(C, C)]
        c = C
        for _ in range(k):
            layers += [SEBottleneck(c, c), SEBottleneck(c, 2 * c, stride=2)]
            c *= 2
        layers.append(ConvBNReLU(c, C))
        layers.append(se_stack(C, 1 if cfg.diffusion else max(cfg.blocks - k, 0)))
        layers.append(ConvBNReLU(C, 1))
        self.body = nn.Sequential(*layers)
        # Inverse diffusion: gathers each bit back from the whole grid.
        self.undiffuse = nn.Linear(cfg.grid_size**2, cfg.message_length) if cfg.diffusion else None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.body(image).flatten(1)
        return self.undiffuse(out) if self.undiffuse is not None else out

    def scores(self, image: torch.Tensor) -> torch.Tensor:
        """The output before the plain model's last ReLU: the same bits (``> 0.5``), with a gradient everywhere.

        :meth:`forward` clips at 0, so a bit read as a confident 0 gives no
        gradient towards 1; optimising the input (embed-time refinement) needs
        the value before that clip.  With the diffusion block the output is
        already linear and this is :meth:`forward`.
        """
        if self.undiffuse is not None:
            return self(image)
        conv, norm, _ = self.body[-1]
        return norm(conv(self.body[:-1](image))).flatten(1)
