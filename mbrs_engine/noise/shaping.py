"""The residual as embedding leaves it: a noise layer that shapes each image's watermark by a rung of the ladder.

Embedding does not add the encoder's residual as it comes: it bends its peaks
(a soft clip) and turns it down wherever the marked photo would show it more
than a cap allows (:mod:`mbrs_engine.perceptual`), taking the first rung of
:data:`mbrs_engine.perceptual.LADDER` that still reads.  A decoder trained only
on raw residuals never sees that.  ``Ladder()`` draws a rung per image and
applies it exactly as embedding does, with the visibility map worked out on the
image itself (one residual pixel per image pixel), so a decoder can be trained
for the residuals it will actually read; put it first in a ``Chain`` with the
edits that follow (``Chain([Ladder(), RealJpeg(30)])``).  ``Ladder(caps=[0.7, 1.0])``
draws only those capped rungs (knee 3, as the ladder's capped rungs are): a
decoder can be trained harder where the ladder's choice is made.
"""
from __future__ import annotations

import torch

from ..perceptual import LADDER, Shaping, cap_gain, shape
from ..visibility import map_from_lab, to_lab
from ._util import call_spec, check_number
from .base import NoiseLayer


class Ladder(NoiseLayer):
    """Each image's residual (encoded - cover) shaped by a rung drawn uniformly: of ``perceptual.LADDER``, or
    the visibility ``caps`` given (each ``Shaping(cap=c)``)."""

    needs_cover = True

    def __init__(self, caps=None):
        super().__init__()
        if caps is not None:
            if not isinstance(caps, (list, tuple)) or not caps:
                raise ValueError(f"Ladder: caps must be a non-empty list of numbers, got {caps!r}")
            caps = [check_number("Ladder", "each cap", c, 0.0, low_open=True) for c in caps]
        self.caps = caps
        self.rungs = LADDER if caps is None else tuple(Shaping(cap=c) for c in caps)

    def forward(self, encoded: torch.Tensor, cover: torch.Tensor | None = None) -> torch.Tensor:
        cover = self._require_cover(encoded, cover)
        rungs = torch.randint(0, len(self.rungs), (len(encoded),)).tolist()
        out = [self.shape_one(e, c, self.rungs[r]) for e, c, r in zip(encoded, cover, rungs)]
        return torch.stack(out)

    @staticmethod
    def shape_one(encoded: torch.Tensor, cover: torch.Tensor, rung: Shaping | None) -> torch.Tensor:
        """One image (3, h, w) with its residual shaped by ``rung`` (None: unchanged).  The gradient reaches
        ``encoded`` through the soft clip and the cap's gain (the gain itself is held constant)."""
        residual = shape(encoded - cover, rung)
        if rung is not None and rung.cap is not None:
            with torch.no_grad():
                lab = to_lab(((cover + 1) / 2)[None])
                seen = map_from_lab(lab, to_lab(((cover + residual + 1) / 2)[None]) - lab)[0, 0]
            residual = residual * cap_gain(seen, rung.cap, rung.spread)
        return cover + residual

    def spec(self) -> str:
        return "Ladder()" if self.caps is None else call_spec("Ladder", caps=self.caps)
