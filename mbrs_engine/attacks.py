"""The attack registry: every edit the tools can apply to a watermarked image, defined once.

An attack kind (:data:`KINDS`) has a name, a label and help text, its
parameters (:class:`Param`: default, range, unit, how a GUI steps it), whether
it changes the image's geometry (size, framing or orientation: the decoder
then needs its search), whether it mixes in the original image, and the
function that runs it, its differentiable stand-in and the noise layer that
trains against it, where they exist.  ``mbrs attack``'s flags, ``mbrs
eval``'s attack chains, the app's attack editor, its training-pool editor
and the refinement's stand-ins are all made from this table, so an attack
added here is everywhere.

Text form: ``name`` or ``name:v1,v2,...`` (missing trailing values take their
defaults; ``=`` works as ``:``), chains join attacks with ``+`` and apply them
left to right; ``identity`` is the empty chain.  A value may also be a range
``low~high``: :func:`draw_chain` draws it uniformly (seeded), so that one text
describes a family of attacks (``crop:0.5~0.9,0.75~1.333,0~1,0~1+jpeg:85``:
a random crop anywhere, with its aspect changed, then JPEG).  Attacks run on the 8-bit
image (float ``(1, 3, H, W)`` in ``[-1, 1]``, rounded back to 8 bit after
each) and return an 8-bit RGB image (an alpha channel is dropped):

* ``jpeg:Q``              real JPEG at quality Q through libjpeg, in memory.
* ``crop:A,R,X,Y``        keep a rectangle of area fraction A; R changes its aspect ratio (its width/height is
                          the image's times R; 1 keeps it); X and Y place it (0: at the left/top edge, 1: at
                          the right/bottom edge, 0.5: centred).  ``crop:A`` is the central crop.
* ``resize:F``            scale both sides by F (bilinear, antialiased when shrinking).
* ``rotate:D``            rotate by D degrees anticlockwise (bicubic), then trim the borders to the largest
                          centred rectangle of the image's aspect ratio that holds no filled corner.
* ``flip``                mirror left to right.
* ``turn:K``              turn by K quarter turns anticlockwise (K = 1 to 3), as a viewer or a phone turns a
                          photo to portrait; with ``flip``, every way of turning and mirroring.
* ``shear:D``             lean the verticals by D degrees anticlockwise (a horizontal shear about the centre, as a
                          perspective correction leans the sides; bicubic), then trim the sides the shear filled.
* ``keystone:K``          a perspective: the top edge shrunk by K of the width at each end (negative K: the
                          bottom edge), as correcting a photo's converging verticals does (bicubic), then trim the
                          sides by K of the width each (``turn:1+keystone:K+turn:3``: the left edge).
* ``stretch:F``           resize the width by F and keep the height (bicubic, antialiased when shrinking): the
                          image resized to another aspect, as a fixed-size export (a 3:2 photo to a square) does.
* ``pad:A,R,X,Y,L``       place the image on a larger canvas of flat grey level L (0 black, 1 white) of which
                          it fills the share A of the area; R changes the canvas's aspect (its width/height is the
                          image's times R; 1 keeps it; a side never shorter than the image's); X and Y place the
                          image (0: at the left/top edge, 1: at the right/bottom edge, 0.5: centred), as a
                          frame, a letterbox to a square or a photo pasted on a page does.
* ``fit:N``               resize (bicubic, antialiased) so that the longer side is N pixels, as a site re-encoding
                          uploads does.
* ``blur:S``              Gaussian blur of standard deviation S pixels.
* ``noise:S``             additive Gaussian noise of standard deviation S in 8-bit levels, seeded.
* ``brightness:B,C``      out = in x C + B (B a share of full scale).
* ``cropout:A``, ``dropout:P``  mix with the original image (a random rectangle of area A, or each pixel with
                          probability P, stays watermarked): these need the original.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .imageio import split_alpha
from .noise import BrightnessContrast, Cropout, Dropout, GaussianBlur, GaussianNoise, RealJpeg, Resize
from .noise.geometric import _box_size, _scaled
from .pixels import pil_to_tensor, quantize, tensor_to_pil
from .resampling import REDUCING_GAP


class AttackError(ValueError):
    """An attack that cannot be parsed or has an invalid value."""


@dataclass(frozen=True)
class Param:
    """One parameter of an attack kind."""

    name: str
    default: float
    minimum: float
    maximum: float
    unit: str = ""
    step: float = 0.05          # how an editor steps it
    decimals: int = 2
    integer: bool = False
    open_minimum: bool = False  # the minimum itself is not allowed

    def check(self, value: float) -> float:
        low_ok = value > self.minimum if self.open_minimum else value >= self.minimum
        if not (math.isfinite(value) and low_ok and value <= self.maximum):
            bracket = "(" if self.open_minimum else "["
            raise AttackError(f"{self.name} must be in {bracket}{self.minimum:g}, {self.maximum:g}], got {value:g}")
        if self.integer and value != int(value):
            raise AttackError(f"{self.name} must be a whole number, got {value:g}")
        return float(value)


Run = Callable[[torch.Tensor, tuple[float, ...], int, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class Training:
    """The noise layer the trainer uses against an attack kind, driven by the kind's first parameter."""

    layer: str                    # a layer of :mod:`mbrs_engine.noise`
    default: float                # the value a training pool starts with
    template: str = "{layer}({value})"

    def spec(self, value: float, integer: bool) -> str:
        return self.template.format(layer=self.layer, value=f"{int(round(value))}" if integer else f"{value:g}")


@dataclass(frozen=True)
class Kind:
    """One kind of attack (see the module docstring)."""

    name: str
    label: str
    help: str
    params: tuple[Param, ...]
    run: Run                      # (x, values, seed, original or None) -> attacked x, before rounding
    geometric: bool = False       # changes size, framing or orientation
    needs_original: bool = False
    stand_in: Callable[[torch.Tensor, tuple[float, ...]], torch.Tensor] | None = None  # differentiable run
    training: Training | None = None  # the layer a training pool uses against it (the app's pool editor)


# ---------------------------------------------------------------- the geometric attacks


def crop_box(h: int, w: int, area: float, aspect: float = 1.0, x: float = 0.5, y: float = 0.5
             ) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the crop ``crop:area,aspect,x,y`` of an h x w image."""
    bh, bw = _box_size(h, w, area)
    if aspect != 1.0:
        factor = math.sqrt(aspect)
        bw, bh = min(w, _scaled(bw, factor)), min(h, _scaled(bh, 1.0 / factor))
    return int(y * (h - bh)), int(x * (w - bw)), bh, bw  # centred: the extra pixel goes right/below


def _crop(x: torch.Tensor, values: tuple[float, ...], seed: int = 0, original=None) -> torch.Tensor:
    top, left, bh, bw = crop_box(x.shape[-2], x.shape[-1], *values)
    return x[..., top:top + bh, left:left + bw]


def central_crop(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central rectangle of area ``fraction`` of a (..., H, W) tensor, with the image's aspect ratio."""
    return _crop(x, (fraction,))


def inner_rectangle(w: int, h: int, degrees: float) -> tuple[int, int]:
    """(width, height) of the largest centred rectangle of the aspect w : h inside a w x h image rotated by
    ``degrees``."""
    theta = math.radians(abs(degrees))
    c, s = math.cos(theta), math.sin(theta)
    scale = min(w / (w * c + h * s), h / (w * s + h * c))
    return max(1, math.floor(w * scale)), max(1, math.floor(h * scale))


def _rotate(x: torch.Tensor, values: tuple[float, ...], seed: int = 0, original=None) -> torch.Tensor:
    (degrees,) = values
    if degrees == 0.0:
        return x
    img = tensor_to_pil(x).rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False)
    w, h = img.size
    iw, ih = inner_rectangle(w, h, degrees)
    left, top = (w - iw) // 2, (h - ih) // 2
    return pil_to_tensor(img.crop((left, top, left + iw, top + ih))).to(x)


def _resized(x: torch.Tensor, across: float, down: float) -> torch.Tensor:
    """``x`` resized by ``across`` and ``down`` (bicubic, antialiased when shrinking), sides rounded."""
    img = tensor_to_pil(x)
    size = (max(1, round(img.width * across)), max(1, round(img.height * down)))
    return pil_to_tensor(img.resize(size, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)).to(x)


def _fit(x: torch.Tensor, values: tuple[float, ...], seed: int = 0, original=None) -> torch.Tensor:
    scale = values[0] / max(x.shape[-2:])
    return _resized(x, scale, scale)


def _shear(x: torch.Tensor, values: tuple[float, ...], seed: int = 0, original=None) -> torch.Tensor:
    (degrees,) = values
    if degrees == 0.0:
        return x
    img = tensor_to_pil(x)
    w, h = img.size
    lean = math.tan(math.radians(degrees))
    # a pixel (x, y) of the result is the image's (x - lean (y - h / 2), y): its verticals lean anticlockwise
    sheared = img.transform((w, h), Image.Transform.AFFINE, (1.0, -lean, lean * h / 2, 0.0, 1.0, 0.0),
                            Image.Resampling.BICUBIC)
    trim = min(w // 2 - 1, math.ceil(abs(lean) * h / 2))
    return pil_to_tensor(sheared.crop((trim, 0, w - trim, h))).to(x)


def keystone_map(w: int, h: int, share: float) -> tuple[float, ...]:
    """The perspective of ``keystone:share`` on a w x h image, as PIL's 8 coefficients (a, b, c, d, e, f, g, h'):
    the result's pixel (x, y) comes from the image's ((a x + b y + c) / (g x + h' y + 1), (d x + e y + f) / (...))."""
    k = share * w
    # where each corner of the image goes: the shrunk edge's ends move in by k (the top's for K > 0)
    corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    moved = [(k, 0.0), (w - k, 0.0), (w, h), (0.0, h)] if k > 0 else [(0.0, 0.0), (w, 0.0), (w + k, h), (-k, h)]
    rows, sides = [], []
    for (u, v), (px, py) in zip(corners, moved):
        rows += [[px, py, 1, 0, 0, 0, -u * px, -u * py], [0, 0, 0, px, py, 1, -v * px, -v * py]]
        sides += [u, v]
    return tuple(np.linalg.solve(np.array(rows, float), np.array(sides, float)).tolist())


def _keystone(x: torch.Tensor, values: tuple[float, ...], seed: int = 0, original=None) -> torch.Tensor:
    (share,) = values
    if share == 0.0:
        return x
    img = tensor_to_pil(x)
    w, h = img.size
    warped = img.transform((w, h), Image.Transform.PERSPECTIVE, keystone_map(w, h, share), Image.Resampling.BICUBIC)
    trim = min(w // 2 - 1, math.ceil(abs(share) * w))
    return pil_to_tensor(warped.crop((trim, 0, w - trim, h))).to(x)


def _stretch(x: torch.Tensor, values: tuple[float, ...], seed: int = 0, original=None) -> torch.Tensor:
    return _resized(x, values[0], 1.0)


def pad_box(h: int, w: int, area: float, aspect: float = 1.0, x: float = 0.5, y: float = 0.5
            ) -> tuple[int, int, int, int]:
    """(canvas height, canvas width, top, left) of ``pad:area,aspect,x,y``: where an h x w image lies on its
    canvas."""
    ch = max(h, round(h / math.sqrt(area * aspect)))
    cw = max(w, round(w * math.sqrt(aspect / area)))
    return ch, cw, int(y * (ch - h)), int(x * (cw - w))


def _pad(x: torch.Tensor, values: tuple[float, ...], seed: int = 0, original=None) -> torch.Tensor:
    *box, level = values
    ch, cw, top, left = pad_box(x.shape[-2], x.shape[-1], *box)
    canvas = torch.full((*x.shape[:-2], ch, cw), 2.0 * level - 1.0, dtype=x.dtype, device=x.device)
    canvas[..., top:top + x.shape[-2], left:left + x.shape[-1]] = x
    return canvas


def _layer(make) -> Run:
    """A run function for a noise layer of the engine, made by ``make(*values)``; seeded."""
    def run(x: torch.Tensor, values: tuple[float, ...], seed: int = 0, original=None) -> torch.Tensor:
        layer = make(*values)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return layer(x, original)
    return run


def _mixing(make) -> Run:
    run = _layer(make)

    def checked(x, values, seed=0, original=None):
        if original is None:
            raise AttackError("this attack mixes in the original image, which is not given")
        if original.shape != x.shape:
            raise AttackError("this attack must come before attacks that change the image's size")
        return run(x, values, seed, original)
    return checked


def _area(default: float) -> Param:
    return Param("area", default, 0.0, 1.0, open_minimum=True)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("jpeg", "JPEG", "real libjpeg compression at this quality",
         (Param("quality", 50, 1, 100, step=5, decimals=0, integer=True),),
         lambda x, v, seed=0, original=None: RealJpeg(int(v[0]))(x), training=Training("RealJpeg", 50)),
    Kind("crop", "Crop", "keep a rectangle of this fraction of the area; aspect changes its width/height "
         "(1 keeps the image's); x and y place it (0: left/top edge, 0.5: centred, 1: right/bottom edge)",
         (_area(0.8), Param("aspect", 1.0, 0.25, 4.0), Param("x", 0.5, 0.0, 1.0), Param("y", 0.5, 0.0, 1.0)),
         _crop, geometric=True, stand_in=lambda x, v: _crop(x, v), training=Training("Crop", 0.7)),
    Kind("resize", "Resize", "scale both sides", (Param("scale", 0.5, 0.05, 4.0, "×"),),
         lambda x, v, seed=0, original=None: Resize(v[0])(x), geometric=True,
         stand_in=lambda x, v: Resize(v[0])(x), training=Training("Resize", 0.5, "{layer}({value}, back=True)")),
    Kind("rotate", "Rotate", "rotate anticlockwise, then trim the borders to the largest inner rectangle",
         (Param("angle", 2.0, -45.0, 45.0, "°", step=0.5, decimals=1),), _rotate, geometric=True),
    Kind("shear", "Shear", "lean the verticals anticlockwise (a horizontal shear), then trim the sides it filled",
         (Param("angle", 2.0, -20.0, 20.0, "°", step=0.5, decimals=1),), _shear, geometric=True),
    Kind("keystone", "Keystone", "a perspective: shrink the top edge by this share of the width at each end "
         "(negative: the bottom edge), then trim the sides it filled",
         (Param("top edge", 0.02, -0.2, 0.2, step=0.005, decimals=3),), _keystone, geometric=True),
    Kind("stretch", "Stretch", "resize the width by this factor and keep the height (another aspect ratio)",
         (Param("width", 0.75, 0.25, 4.0, "×"),), _stretch, geometric=True),
    Kind("pad", "Pad", "place the image on a larger flat canvas of which it fills this share of the area; aspect "
         "changes the canvas's width/height (1 keeps the image's); x and y place the image (0: left/top edge, "
         "0.5: centred, 1: right/bottom edge); level is the canvas's grey (0 black, 1 white)",
         (_area(0.7), Param("aspect", 1.0, 0.25, 4.0), Param("x", 0.5, 0.0, 1.0), Param("y", 0.5, 0.0, 1.0),
          Param("level", 1.0, 0.0, 1.0)), _pad, geometric=True),
    Kind("fit", "Fit", "resize so that the longer side has this many pixels",
         (Param("long side", 1080, 16, 20000, " px", step=10, decimals=0, integer=True),), _fit, geometric=True),
    Kind("flip", "Flip", "mirror left to right", (),
         lambda x, v, seed=0, original=None: torch.flip(x, dims=[-1]), geometric=True,
         stand_in=lambda x, v: torch.flip(x, dims=[-1])),
    Kind("turn", "Quarter turn", "turn anticlockwise by this many quarter turns (90° each)",
         (Param("quarters", 1, 1, 3, " × 90°", step=1, decimals=0, integer=True),),
         lambda x, v, seed=0, original=None: torch.rot90(x, int(v[0]), (-2, -1)), geometric=True,
         stand_in=lambda x, v: torch.rot90(x, int(v[0]), (-2, -1))),
    Kind("blur", "Gaussian blur", "Gaussian filter", (Param("sigma", 1.0, 0.1, 10.0, " px", step=0.1, decimals=1),),
         _layer(GaussianBlur), training=Training("GaussianBlur", 1.0)),
    Kind("noise", "Gaussian noise", "additive Gaussian noise, standard deviation in 8-bit levels",
         (Param("std", 5.0, 0.5, 50.0, " levels", step=0.5, decimals=1),), _layer(GaussianNoise),
         training=Training("GaussianNoise", 2.0)),
    Kind("brightness", "Brightness", "brightness and contrast: out = in × contrast + brightness (a share of "
         "full scale)", (Param("brightness", 0.1, -0.5, 0.5), Param("contrast", 1.0, 0.5, 1.5)),
         _layer(BrightnessContrast)),
    Kind("cropout", "Cropout", "watermarked pixels inside a random rectangle of this area, original pixels outside",
         (_area(0.5),), _mixing(Cropout), needs_original=True, training=Training("Cropout", 0.3)),
    Kind("dropout", "Dropout", "each pixel is the watermarked one with this probability, else the original's",
         (Param("kept share", 0.5, 0.05, 1.0),), _mixing(Dropout), needs_original=True,
         training=Training("Dropout", 0.3)),
)}


# ---------------------------------------------------------------- attacks and chains


@dataclass(frozen=True)
class Attack:
    """One attack: a kind and its parameter values (``Attack("jpeg", 75)``, ``Attack("crop", (0.5, 1.2))``);
    missing trailing values take their defaults."""

    name: str
    value: float | tuple[float, ...] = ()

    def __post_init__(self) -> None:
        kind = KINDS.get(self.name)
        if kind is None:
            raise AttackError(f"unknown attack {self.name!r} (known: {', '.join(KINDS)})")
        given = self.value if isinstance(self.value, tuple) else (self.value,)
        if len(given) > len(kind.params):
            raise AttackError(f"{self.name} takes {len(kind.params)} value(s), got {len(given)}")
        values = tuple(p.check(float(v)) for p, v in zip(kind.params, given))
        values += tuple(float(p.default) for p in kind.params[len(values):])
        object.__setattr__(self, "value", values)

    @property
    def kind(self) -> Kind:
        return KINDS[self.name]

    @property
    def values(self) -> tuple[float, ...]:
        return self.value  # type: ignore[return-value]

    def spec(self) -> str:
        """The text form, without trailing default values (``crop:0.8``, ``flip``)."""
        values = list(self.values)
        while values and values[-1] == self.kind.params[len(values) - 1].default and len(values) > 1:
            values.pop()
        if not self.kind.params:
            return self.name
        return f"{self.name}:" + ",".join(f"{v:g}" for v in values)

    def apply(self, x: torch.Tensor, seed: int = 0, original: torch.Tensor | None = None) -> torch.Tensor:
        """Attack a float image (1, 3, H, W) in [-1, 1]; the result is rounded to 8 bit."""
        return quantize(self.kind.run(x, self.values, seed, original))

    def stand_in(self, x: torch.Tensor) -> torch.Tensor:
        """A differentiable stand-in of this attack (geometry as is; value changes such as JPEG as identity)."""
        return self.kind.stand_in(x, self.values) if self.kind.stand_in else x


def parse_attack(text: str) -> Attack:
    """``name`` or ``name:v1,v2`` (or ``name=v1``) as an :class:`Attack`."""
    name, sep, value = text.strip().replace("=", ":").partition(":")
    name = name.strip().lower()
    kind = KINDS.get(name)
    if kind is None:
        raise AttackError(f"unknown attack {name!r} (known: {', '.join(KINDS)})")
    if not sep:
        if kind.params:
            raise AttackError(f"attack {text!r} needs a value, e.g. {name}:{kind.params[0].default:g}")
        return Attack(name)
    numbers = []
    for part in value.split(","):
        try:
            numbers.append(float(part))
        except ValueError:
            raise AttackError(f"attack {text!r}: {part.strip()!r} is not a number") from None
    return Attack(name, tuple(numbers))


def parse_chain(text: str) -> tuple[Attack, ...]:
    """``identity`` or ``a:1+b:2`` as a tuple of attacks (applied left to right)."""
    text = text.strip()
    if text.lower() in ("identity", "none", ""):
        return ()
    return tuple(parse_attack(part) for part in text.split("+"))


def _draw_value(value: str, integer: bool, pick) -> str:
    """One value of a chain text: a number as it is, or a range ``low~high`` resolved by ``pick(low, high)``."""
    if "~" not in value:
        return value
    low, _, high = value.partition("~")
    try:
        number = pick(float(low), float(high))
    except ValueError:
        raise AttackError(f"{value.strip()!r} is not a range low~high") from None
    return str(round(number)) if integer else f"{number:.4g}"


def draw_chain(text: str, rng: np.random.Generator | None = None) -> tuple[Attack, ...]:
    """A chain whose values may be ranges ``low~high``, each drawn uniformly with ``rng`` (whole numbers for
    integer parameters).  Without ``rng`` both ends of every range are checked and the low ends returned."""
    if rng is None:
        draw_chain(text, _Ends(high=True))
        return draw_chain(text, _Ends(high=False))
    parts = []
    for part in text.replace("=", ":").split("+"):
        name, sep, values = part.strip().partition(":")
        kind = KINDS.get(name.strip().lower())
        params = kind.params if kind else ()
        drawn = [_draw_value(v, i < len(params) and params[i].integer, rng.uniform)
                 for i, v in enumerate(values.split(","))] if sep else []
        parts.append(f"{name}:{','.join(drawn)}" if sep else name)
    return parse_chain("+".join(parts))


class _Ends:
    """Stands in for a generator to pick one end of every range."""

    def __init__(self, high: bool):
        self.high = high

    def uniform(self, low: float, high: float) -> float:
        return high if self.high else low


def chain_spec(chain: tuple[Attack, ...]) -> str:
    return "+".join(a.spec() for a in chain) or "identity"


def is_geometric(chain: tuple[Attack, ...]) -> bool:
    """Whether the chain changes size, framing or orientation (decoding it needs the search)."""
    return any(a.kind.geometric for a in chain)


def apply_chain(img: Image.Image, chain: tuple[Attack, ...], seed: int = 0,
                original: Image.Image | None = None) -> Image.Image:
    """Apply the attacks in order to an image (``original``: the unmarked image, for the attacks that mix it
    in); returns an 8-bit RGB image."""
    rgb, _ = split_alpha(img)
    if not chain:
        return rgb
    x = pil_to_tensor(rgb)
    cover = pil_to_tensor(split_alpha(original)[0]) if original is not None else None
    for i, attack in enumerate(chain):
        x = attack.apply(x, seed + i, cover)
    return tensor_to_pil(x)
