"""The MBRS noise layer: one of several layers, drawn at random for each mini-batch.

``Combined([JpegMask(), RealJpeg(50), Identity()])`` is the paper's noise pool:
every call (one mini-batch) applies one of the layers, chosen with the given
weights (uniform by default).  The draws come from the layer's own
``torch.Generator`` so that they do not depend on, nor disturb, the global
random stream; its state travels in the module's state dict (as a plain
``uint8`` tensor under ``_extra_state``), so a resumed training continues the
same sequence of choices.

``Chain([Ladder(), Jitter(), RealJpeg(85)])`` applies several layers one after
the other to every mini-batch: an edit as people make them, several at once.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ._util import call_spec, check_number
from .base import NoiseLayer


def _as_list(items) -> list | None:
    """A list of the items of an iterable (not a string), else ``None``."""
    return list(items) if isinstance(items, Iterable) and not isinstance(items, (str, bytes)) else None


class Combined(NoiseLayer):
    """One of ``layers`` per mini-batch, drawn with probabilities proportional to ``weights``.

    ``seed`` seeds the private generator; ``None`` takes a seed from the
    global torch generator (so ``torch.manual_seed`` still makes the sequence
    repeatable).  After each call, ``last_choice`` is the index of the layer
    used and ``last_layer`` the layer itself (the trainer checks whether it
    was a non-differentiable real JPEG).
    """

    def __init__(self, layers: Sequence[NoiseLayer], seed: int | None = None,
                 weights: Sequence[float] | None = None):
        super().__init__()
        layers = _as_list(layers)
        if not layers or not all(isinstance(layer, NoiseLayer) for layer in layers):
            raise ValueError("Combined: layers must be a non-empty list of noise layers")
        self.layers = nn.ModuleList(layers)
        if weights is not None:
            weights = _as_list(weights)
            if weights is None or len(weights) != len(layers):
                raise ValueError(f"Combined: weights must be a list of {len(layers)} numbers")
            weights = [check_number("Combined", "each weight", w, 0.0) for w in weights]
            if sum(weights) <= 0:
                raise ValueError("Combined: at least one weight must be positive")
        self.weights = weights
        if seed is not None:
            seed = check_number("Combined", "seed", seed, 0, 2**63 - 1, integer=True)
        self.seed = seed
        self._generator = torch.Generator()
        self._generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        self.last_choice: int | None = None

    @property
    def needs_cover(self) -> bool:
        return any(layer.needs_cover for layer in self.layers)

    @property
    def last_layer(self) -> NoiseLayer | None:
        """The layer applied by the last call (``None`` before the first)."""
        return None if self.last_choice is None else self.layers[self.last_choice]

    def draw(self) -> int:
        """Draw the index of the next layer (advances the generator)."""
        probs = torch.tensor(self.weights if self.weights is not None else [1.0] * len(self.layers))
        return int(torch.multinomial(probs, 1, generator=self._generator).item())

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        self.last_choice = self.draw()
        return self.layers[self.last_choice](encoded, cover)

    def get_extra_state(self) -> torch.Tensor:
        return self._generator.get_state()

    def set_extra_state(self, state) -> None:
        if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
            raise ValueError("Combined: the saved generator state must be a uint8 tensor")
        self._generator.set_state(state.detach().cpu().clone())

    def spec(self) -> str:
        kwargs = {}
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.weights is not None:
            kwargs["weights"] = self.weights
        return call_spec("Combined", list(self.layers), **kwargs)


class Chain(NoiseLayer):
    """``layers`` one after the other on every mini-batch.  Each is given the cover; a layer that reads it
    (``needs_cover``) must come before any layer that moves or resizes the image."""

    def __init__(self, layers: Sequence[NoiseLayer]):
        super().__init__()
        layers = _as_list(layers)
        if not layers or not all(isinstance(layer, NoiseLayer) for layer in layers):
            raise ValueError("Chain: layers must be a non-empty list of noise layers")
        self.layers = nn.ModuleList(layers)

    @property
    def needs_cover(self) -> bool:
        return any(layer.needs_cover for layer in self.layers)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        out = encoded
        for layer in self.layers:
            out = layer(out, cover)
        return out

    def spec(self) -> str:
        return call_spec("Chain", list(self.layers))
