"""The Train tab's noise pool as check boxes <-> the trainer's noise spec text (no Qt).

Each selected layer becomes one entry of ``Combined([...])`` (one layer per
mini-batch, the MBRS method); the text is what :func:`mbrs_engine.noise.parse_noise`
reads, and :func:`selection_from_spec` reads a preset's pool back into check
boxes (layers the boxes cannot express are kept verbatim).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

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


POOL: tuple[PoolEntry, ...] = (
    PoolEntry("jpeg_mask", "JPEG-Mask", "JpegMask", help="keep only the low DCT frequencies (the paper's simulation)"),
    PoolEntry("real_jpeg", "Real JPEG", "RealJpeg", "quality", 50, 10, 100, 0, "{layer}({value})",
              "real libjpeg compression (the 'real' half of MBRS)"),
    PoolEntry("identity", "Identity", "Identity", help="no distortion"),
    PoolEntry("jpeg_sim", "Simulated JPEG", "JpegSim", "quality", 50, 10, 100, 0, "{layer}({value})",
              "JPEG computed in torch with real rounding"),
    PoolEntry("jpeg_ss", "JPEG-SS", "JpegSS", "quality", 50, 10, 100, 0, "{layer}({value})",
              "differentiable JPEG with Shin and Song's rounding approximation"),
    PoolEntry("crop", "Crop", "Crop", "kept area", 0.7, 0.01, 1.0, 4, "{layer}({value})",
              "keep a random rectangle of this area, mid-grey elsewhere"),
    PoolEntry("cropout", "Cropout", "Cropout", "kept area", 0.3, 0.01, 1.0, 4, "{layer}({value})",
              "watermarked inside a random rectangle, original outside"),
    PoolEntry("dropout", "Dropout", "Dropout", "kept share", 0.3, 0.01, 1.0, 4, "{layer}({value})",
              "each pixel watermarked with this probability, else original"),
    PoolEntry("blur", "Gaussian blur", "GaussianBlur", "sigma", 1.0, 0.1, 5.0, 2, "{layer}({value})",
              "Gaussian filter, sigma in pixels"),
    PoolEntry("resize", "Resize (and back)", "Resize", "scale", 0.5, 0.1, 2.0, 2, "{layer}({value}, back=True)",
              "scale down and back up"),
    PoolEntry("noise", "Gaussian noise", "GaussianNoise", "std", 2.0, 0.1, 20.0, 1, "{layer}({value})",
              "additive noise, standard deviation in 8-bit levels"),
)
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
