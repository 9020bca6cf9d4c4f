"""The MBRS networks: encoder (with message processor), decoder, adversary.

>>> from mbrs_engine.nets import build_networks
>>> encoder, decoder, adversary = build_networks(image_size=128, message_length=64)
"""
from __future__ import annotations

import torch
from torch import nn

from .adversary import Adversary
from .config import MAX_PARAMETERS, PRESETS, ArchitectureError, NetworkConfig, valid_message_lengths
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


def state_shapes(cfg: NetworkConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor of the encoder's and decoder's state dicts (``encoder.*``, ``decoder.*``), from
    networks built on the meta device (nothing allocated); raises :class:`ArchitectureError` beyond
    :data:`~mbrs_engine.nets.config.MAX_PARAMETERS`."""
    with torch.device("meta"):
        encoder, decoder = Encoder(cfg), Decoder(cfg)
    shapes = {f"{prefix}.{key}": tuple(value.shape) for prefix, module in (("encoder", encoder), ("decoder", decoder))
              for key, value in module.state_dict().items()}
    parameters = count_parameters(encoder) + count_parameters(decoder)
    if parameters > MAX_PARAMETERS:
        raise ArchitectureError(f"{parameters:,} parameters is beyond the limit of {MAX_PARAMETERS:,}")
    return shapes


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (BatchNorm affine included, running statistics excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["Adversary", "ArchitectureError", "Decoder", "Encoder", "MessageProcessor", "NetworkConfig",
           "PRESETS", "build_from_config", "build_networks", "count_parameters", "state_shapes",
           "valid_message_lengths"]
