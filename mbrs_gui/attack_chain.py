"""The Verify tab's attack chain (no Qt): ordered attacks from the engine's registry
(:data:`mbrs_engine.attacks.KINDS`, exactly what ``mbrs attack`` and ``mbrs eval`` run), applied to an 8-bit
image, reproducibly.  Cropout and Dropout mix the attacked image with the original, so they need it (and
must come before anything that changes the size).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from mbrs_engine.attacks import KINDS, Attack, AttackError, apply_chain
from mbrs_engine.imageio import split_alpha

__all__ = ["KINDS", "Chain", "ChainError", "Step"]


class ChainError(AttackError):
    """An attack chain that cannot be applied (e.g. Cropout without the original)."""


@dataclass
class Step:
    kind: str
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ChainError(f"unknown attack {self.kind!r}")
        if not self.values:
            self.values = tuple(p.default for p in KINDS[self.kind].params)

    def describe(self) -> str:
        kind = KINDS[self.kind]
        return (kind.label + " " + ", ".join(f"{p.name} {v:.{p.decimals}f}{p.unit}"
                                             for p, v in zip(kind.params, self.values))).strip()

    def attack(self) -> Attack:
        return Attack(self.kind, tuple(round(v) if p.integer else v
                                       for p, v in zip(KINDS[self.kind].params, self.values)))


@dataclass
class Chain:
    steps: list[Step] = field(default_factory=list)
    seed: int = 0

    def describe(self) -> str:
        return " → ".join(s.describe() for s in self.steps) or "no attack"

    @property
    def needs_original(self) -> bool:
        return any(KINDS[s.kind].needs_original for s in self.steps)

    def apply(self, img: Image.Image, original: Image.Image | None = None, check=lambda: None) -> Image.Image:
        """The attacked 8-bit RGB image; ``check()`` is called between steps (to cancel)."""
        rgb, _ = split_alpha(img)
        if original is not None and split_alpha(original)[0].size != rgb.size:
            original = None
        for i, step in enumerate(self.steps):
            check()
            kind = KINDS[step.kind]
            if kind.needs_original and original is None:
                raise ChainError(f"{kind.label} mixes in the original image: embed the image in the Embed tab "
                                 f"and send it here, or remove this attack")
            try:
                rgb = apply_chain(rgb, (step.attack(),), self.seed + i, original)
            except AttackError as exc:
                raise ChainError(f"{kind.label}: {exc}") from None
        return rgb
