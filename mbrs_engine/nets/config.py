"""Architecture configuration of an MBRS model, its validation, and the named presets.

The message processor expands a message of L bits, laid out as an h x h grid
(h = sqrt(L)), to the image size H by k stride-2 transposed convolutions, so
L and H must satisfy H = h * 2**k.  The diffusion variant first maps the L bits
through a fully connected layer to a d x d grid (d = 16 in the paper), so it
takes any L and needs H = d * 2**k.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


class ArchitectureError(ValueError):
    """An (image size, message length) pair the architecture cannot take."""


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to rebuild the encoder, decoder and adversary."""

    image_size: int = 128
    message_length: int = 64
    channels: int = 64
    blocks: int = 4
    diffusion: bool = False
    diffusion_size: int = 16
    adversary_channels: int = 64

    def __post_init__(self) -> None:
        for name in ("image_size", "message_length", "channels", "blocks", "diffusion_size", "adversary_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "blocks" else 1):
                raise ArchitectureError(f"{name} must be a positive integer, got {value!r}")
        if self.channels % 8:
            raise ArchitectureError(f"channels must be a multiple of 8 (SE reduction), got {self.channels}")
        self.upsamplings  # validates the L/H pair

    @property
    def grid_size(self) -> int:
        """Side of the square grid the message processor starts from (h, or d with diffusion)."""
        return self.diffusion_size if self.diffusion else math.isqrt(self.message_length)

    @property
    def upsamplings(self) -> int:
        """k: how many stride-2 stages lie between the message grid and the image."""
        H, L = self.image_size, self.message_length
        if self.diffusion:
            k = _log2_ratio(H, self.diffusion_size)
            if k is None:
                sizes = _nearest(H, [self.diffusion_size * 2**i for i in range(12)])
                raise ArchitectureError(
                    f"with diffusion the image size must be {self.diffusion_size}·2^k; "
                    f"{H} is not (nearest valid: {', '.join(map(str, sizes))})"
                )
            return k
        h = math.isqrt(L)
        k = _log2_ratio(H, h) if h * h == L else None
        if k is None:
            raise ArchitectureError(_invalid_pair_message(H, L))
        return k

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "NetworkConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ArchitectureError(f"unknown network config keys: {sorted(unknown)}")
        return cls(**data)


def _log2_ratio(big: int, small: int) -> int | None:
    """k with big == small * 2**k, or None."""
    if small < 1 or big % small:
        return None
    ratio = big // small
    return ratio.bit_length() - 1 if ratio & (ratio - 1) == 0 else None


def _nearest(value: int, candidates: list[int], count: int = 2) -> list[int]:
    return sorted(sorted(set(candidates), key=lambda c: (abs(c - value), c))[:count])


def valid_message_lengths(image_size: int) -> list[int]:
    """Message lengths the plain (non-diffusion) architecture takes at this image size."""
    lengths, h = [], image_size
    while True:
        lengths.append(h * h)
        if h % 2:
            break
        h //= 2
    return sorted(lengths)


def _invalid_pair_message(H: int, L: int) -> str:
    msg = (f"message length {L} does not fit image size {H}: the message processor needs "
           f"L = h*h with H = h*2^k.")
    msg += f" Nearest valid L for H={H}: {', '.join(map(str, _nearest(L, valid_message_lengths(H))))}."
    h = math.isqrt(L)
    if h * h == L:
        msg += f" Nearest valid H for L={L}: {', '.join(map(str, _nearest(H, [h * 2**i for i in range(12)])))}."
    msg += " Or use diffusion=True, which takes any L."
    return msg


#: Named architectures.  ``faithful`` and ``diffusion`` reproduce the reference's
#: parameter counts (561,292 / 20,244,099 and 552,652 / 5,246,497).
PRESETS: dict[str, NetworkConfig] = {
    "faithful": NetworkConfig(image_size=128, message_length=64),
    "diffusion": NetworkConfig(image_size=128, message_length=30, diffusion=True),
    "faithful-400": NetworkConfig(image_size=400, message_length=625),
}
