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
    """An (image size, message length) pair the architecture cannot take, or sizes beyond the limits."""


#: The largest value each size may take (a model file is data: its sizes must not be able to take the machine).
MAX_SIZES = {"image_size": 4096, "message_length": 65536, "channels": 1024, "blocks": 64, "diffusion_size": 1024,
             "adversary_channels": 1024}
#: Bound on image_size**2 * channels: the feature maps at full resolution (2**26: about 256 MB per map in
#: float32 for one image; the faithful model has 2**20, the 400-pixel preset 2**23.3).
MAX_FULL_RESOLUTION_FEATURES = 2**26
#: Bound on the encoder's plus the decoder's parameters (the faithful model has 20.8 M; checked by
#: :func:`mbrs_engine.nets.state_shapes`, which builds nothing).
MAX_PARAMETERS = 200_000_000


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
            if value > MAX_SIZES[name]:
                raise ArchitectureError(f"{name} {value} is beyond the limit of {MAX_SIZES[name]}")
        if self.image_size**2 * self.channels > MAX_FULL_RESOLUTION_FEATURES:
            raise ArchitectureError(f"image_size {self.image_size} with {self.channels} channels is beyond the "
                                    f"limit (image_size² x channels <= {MAX_FULL_RESOLUTION_FEATURES:,})")
        if self.channels % 8:
            raise ArchitectureError(f"channels must be a multiple of 8 (SE reduction), got {self.channels}")
        self.upsamplings  # validates the L/H pair

    @property
    def grid_size(self) -> int:
        """Side of the square grid the message processor starts from (h, or d with diffusion)."""
        return self.diffusion_size if self.diffusion else math.isqrt(self.message_length)

    @property
    def cell_pixels(self) -> int:
        """A message cell's side in pixels at the model's scale (the decoder's total stride)."""
        return self.image_size // self.grid_size

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
