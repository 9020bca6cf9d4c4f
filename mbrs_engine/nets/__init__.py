"""The MBRS networks: encoder (with message processor), decoder, adversary.

>>> from mbrs_engine.nets import build_networks
>>> encoder, decoder, adversary = build_networks(image_size=128, message_length=64)
"""
from __future__ import annotations

from torch import nn

from .adversary import Adversary
from .config import PRESETS, ArchitectureError, NetworkConfig, valid_message_lengths
from .decoder import Decoder
from .encoder import Encoder, MessageProcessor


def build_networks(image_size: int = 128, message_length: int = 64, channels: int = 64,
                   blocks: int = 4, diffusion: bool = False, **extra) -> tuple[Encoder, Decoder, Adversary]:
    """Build the three networks; raises :class:`ArchitectureError` for an impossible L/H pair."""
    cfg = NetworkConfig(image_size=image_size, message_length=message_length, channels=channels,
                        blocks=blocks, diffusion=diffusion, **extra)
    return build_from_config(cfg)


def build_from_config(cfg: NetworkConfig) -> tuple[Encoder, Decoder, Adversary]:
    return Encoder(cfg), Decoder(cfg), Adversary(cfg.adversary_channels)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (BatchNorm affine included, running statistics excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["Adversary", "ArchitectureError", "Decoder", "Encoder", "MessageProcessor", "NetworkConfig",
           "PRESETS", "build_from_config", "build_networks", "count_parameters", "valid_message_lengths"]
