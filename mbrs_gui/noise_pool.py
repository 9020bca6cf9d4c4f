"""The Train tab's noise pool as check boxes <-> the trainer's noise spec text (no Qt).

The entries are the attack registry's kinds that have a training layer
(:class:`mbrs_engine.attacks.Training`: an attack added there with one
appears here), plus the layers only training uses (:data:`SIMULATIONS`).

Each selected layer becomes one entry of ``Combined([...])`` (one layer per
mini-batch, the MBRS method); the text is what :func:`mbrs_engine.noise.parse_noise`
reads, and :func:`selection_from_spec` reads a preset's pool back into check
boxes (layers the boxes cannot express are kept verbatim).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from mbrs_engine.attacks import KINDS, Kind
from mbrs_engine.noise import canonical_spec, pool_layers


@dataclass(frozen=True)
class PoolEntry:
    key: str
    label: str
    layer: str  # the class name parse_noise knows
    param: str | None = None  # label of the one parameter, if any
    default: float = 0.0
    minimum: float = 0.0
    maximum: float = 1.0
    decimals: int = 0
    template: str = "{layer}()"  # how the layer is written; {value} is the parameter
    help: str = ""

    def spec(self, value: float | None = None) -> str:
        if self.param is None:
            return self.template.format(layer=self.layer, value="")
        value = self.default if value is None else value
        number = f"{int(round(value))}" if self.decimals == 0 else f"{value:g}"
        return self.template.format(layer=self.layer, value=number)


def _from_kind(kind: Kind) -> PoolEntry:
    """The pool entry of an attack kind that has a training layer: its label, help and first parameter."""
    param = kind.params[0]
    decimals = 0 if param.integer else max(param.decimals, 4 if param.maximum <= 1 else 2)  # areas: Crop(0.0225)
    return PoolEntry(kind.name, kind.label, kind.training.layer, param.name, kind.training.default,
                     max(param.minimum, 10 ** -decimals) if param.open_minimum else param.minimum, param.maximum,
                     decimals, kind.training.template, kind.help)


#: Layers that only training uses (simulations of JPEG, and no distortion): not edits one makes to an image.
SIMULATIONS = (
    PoolEntry("jpeg_mask", "JPEG-Mask", "JpegMask", help="keep only the low DCT frequencies (the paper's simulation)"),
    PoolEntry("identity", "Identity", "Identity", help="no distortion"),
    PoolEntry("jpeg_sim", "Simulated JPEG", "JpegSim", "quality", 50, 10, 100, 0, "{layer}({value})",
              "JPEG computed in torch with real rounding"),
    PoolEntry("jpeg_ss", "JPEG-SS", "JpegSS", "quality", 50, 10, 100, 0, "{layer}({value})",
              "differentiable JPEG with Shin and Song's rounding approximation"),
)
_ATTACKS = tuple(_from_kind(k) for k in KINDS.values() if k.training is not None)
#: The pool editor's entries, in the order a spec lists them: the MBRS trio (JPEG-Mask, real JPEG, Identity)
#: first, then the other simulations, then every other attack of the registry that has a training layer.
POOL: tuple[PoolEntry, ...] = (SIMULATIONS[0], *_ATTACKS[:1], *SIMULATIONS[1:], *_ATTACKS[1:])
BY_KEY = {e.key: e for e in POOL}
_ARG = re.compile(r"\(\s*(-?[\d.eE+-]+)")


def build_spec(selection: dict[str, float | None], extra: list[str] | None = None) -> str:
    """``Combined([...])`` of the selected entries (in the pool's order) plus ``extra`` specs; one layer alone as is."""
    parts = [e.spec(selection[e.key]) for e in POOL if e.key in selection] + list(extra or [])
    if not parts:
        raise ValueError("choose at least one noise layer")
    spec = parts[0] if len(parts) == 1 else f"Combined([{','.join(parts)}])"
    canonical_spec(spec)  # raises NoiseSpecError with a clear message if a value is out of range
    return spec


def selection_from_spec(spec: str) -> tuple[dict[str, float | None], list[str]]:
    """(check-box selection, layer specs the boxes cannot express) of a noise spec."""
    selection: dict[str, float | None] = {}
    extra: list[str] = []
    for name, text in pool_layers(spec):
        entry = next((e for e in POOL if name == e.layer), None)
        value = None
        if entry is not None and entry.param is not None:
            match = _ARG.search(text)
            value = float(match.group(1)) if match else entry.default
        if entry is None or entry.key in selection or canonical_spec(entry.spec(value)) != text:
            extra.append(text)
        else:
            selection[entry.key] = value
    return selection, extra
