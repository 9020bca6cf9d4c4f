"""Noise layers from text, safely: ``parse_noise("Combined([JpegMask(),Jpeg(50),Identity()])")``.

The text is read by a small tokenizer and recursive-descent parser; nothing
in it is ever evaluated as Python (no ``eval``, ``exec`` or ``ast``), and a
name can only ever resolve to one of the registered layers.  Grammar::

    spec   := layer ("+" layer)*           # several: Combined of them
    layer  := NAME ["(" [arg ("," arg)* [","]] ")"]
    arg    := [NAME "="] value
    value  := NUMBER | STRING | True | False | None | list | spec
    list   := "[" [value ("," value)* [","]] "]"

Numbers are ints or floats (``50``, ``-0.1``, ``0.035``, ``1e-3``); strings are
quoted with ``'`` or ``"`` (``\\`` escapes the next character).  Layer names
are matched ignoring case, ``-`` and ``_``, and aliases are accepted, so the
reference's syntax (``Combined([JpegMask(50),Jpeg(50),Identity()])``) and a
readable one (``jpeg-mask + real-jpeg(50) + identity``) both work.  The
reference passes a quality to JpegMask, which has none: it is accepted and
ignored.  Errors raise :class:`NoiseSpecError` with the position.
"""
from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple

from ._util import check_number
from .base import Identity, NoiseLayer
from .combined import Chain, Combined
from .filters import BrightnessContrast, GaussianBlur, GaussianNoise
from .geometric import Crop, CropResize, Cropout, Dropout, Jitter, Resize
from .jpeg import JpegMask, JpegSim, JpegSS, KorniaJpeg, RealJpeg
from .shaping import Ladder

MAX_LENGTH = 10_000
MAX_DEPTH = 32


class NoiseSpecError(ValueError):
    """A noise spec that cannot be read; ``position`` is the character offset of the problem."""

    def __init__(self, message: str, text: str | None = None, position: int | None = None):
        self.message, self.text, self.position = message, text, position
        if text is not None and position is not None:
            start = max(text.rfind("\n", 0, position) + 1, position - 60)
            end = text.find("\n", position)
            line = text[start:min(end if end >= 0 else len(text), position + 60)]
            message = f"{message} (at position {position})\n  {line}\n  {' ' * (position - start)}^"
        super().__init__(message)


def _identity() -> NoiseLayer:
    return Identity()


def _jpeg_mask(quality=None) -> NoiseLayer:
    # The reference writes JpegMask(50); the mask has no quality, so it is checked and dropped.
    if quality is not None:
        check_number("JpegMask", "quality", quality, 1, 100, integer=True)
    return JpegMask()


@dataclass(frozen=True)
class _Entry:
    name: str
    factory: Callable[..., NoiseLayer]
    description: str
    aliases: tuple[str, ...] = ()
    usage: str | None = None

    def signature(self) -> str:
        if self.usage is not None:
            return self.usage
        sig = inspect.signature(self.factory)
        params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
        return self.name + str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


_ENTRIES = (
    _Entry("Identity", _identity, "no distortion"),
    _Entry("JpegSim", JpegSim, "JPEG simulated in torch with real rounding (no gradient through it)",
           ("Jpeg",)),
    _Entry("RealJpeg", RealJpeg, "real libjpeg compression through PIL (gradient stopped or straight-through)",
           ("JpegReal",)),
    _Entry("JpegMask", _jpeg_mask, "keep the 5x5 (Y) and 3x3 (Cb, Cr) lowest DCT frequencies of each 8x8 block",
           usage="JpegMask()"),
    _Entry("JpegSS", JpegSS, "differentiable JPEG, rounding replaced by the paper's cubic (Shin and Song)"),
    _Entry("KorniaJpeg", KorniaJpeg, "kornia's differentiable JPEG", ("DiffJpeg",)),
    _Entry("Crop", Crop, "keep a random rectangle of area ratio p (sqrt(p) of each side), fill the rest"),
    _Entry("Cropout", Cropout, "encoded pixels inside a random rectangle of area ratio p, cover pixels outside"),
    _Entry("Dropout", Dropout, "each pixel encoded with probability p, else the cover's"),
    _Entry("CropResize", CropResize, "cut a random rectangle of area ratio p and resize it to full size"),
    _Entry("Resize", Resize, "resize by a factor (back=True: and back to the original size)"),
    _Entry("Jitter", Jitter, "a small random turn (degrees), shift (pixels) and scale, resampled"),
    _Entry("GaussianBlur", GaussianBlur, "Gaussian filter of standard deviation sigma pixels", ("GF",)),
    _Entry("GaussianNoise", GaussianNoise, "additive Gaussian noise, std in 8-bit levels", ("Noise",)),
    _Entry("BrightnessContrast", BrightnessContrast, "out = x * contrast + 2 * brightness, clamped"),
    _Entry("Ladder", Ladder,
           "each residual shaped as embedding shapes it, by a rung of the ladder (or of the caps given) per image"),
    _Entry("Combined", Combined, "one of the listed layers at random for each mini-batch (MBRS)"),
    _Entry("Chain", Chain, "the listed layers one after the other on every mini-batch"),
)


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


_BY_KEY = {_key(n): e for e in _ENTRIES for n in (e.name, *e.aliases)}
_SPELLING = {_key(n): n for e in _ENTRIES for n in (e.name, *e.aliases)}


def available_layers() -> dict[str, str]:
    """Canonical layer name -> one line: usage, aliases and what it does (for the GUI and CLI)."""
    out = {}
    for e in _ENTRIES:
        aka = f" (alias {', '.join(e.aliases)})" if e.aliases else ""
        out[e.name] = f"{e.signature()}{aka}: {e.description}"
    return out


class _Token(NamedTuple):
    kind: str  # "number", "name", "string", "punct", "end"
    value: object
    pos: int


_TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z][A-Za-z0-9_]*)*)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<punct>[()\[\],=+])
""", re.VERBOSE | re.DOTALL | re.ASCII)


def _tokenize(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            what = "unterminated string" if text[pos] in "'\"" else f"unexpected character {text[pos]!r}"
            raise NoiseSpecError(what, text, pos)
        kind, raw = m.lastgroup, m.group()
        if kind == "number":
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(_Token(kind, value, pos))
        elif kind == "string":
            tokens.append(_Token(kind, re.sub(r"\\(.)", r"\1", raw[1:-1], flags=re.DOTALL), pos))
        elif kind != "space":
            tokens.append(_Token(kind, raw, pos))
        pos = m.end()
    tokens.append(_Token("end", None, len(text)))
    return tokens


_CONSTANTS = {"true": True, "false": False, "none": None}


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def error(self, message: str, token: _Token) -> NoiseSpecError:
        return NoiseSpecError(message, self.text, token.pos)

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self) -> _Token:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, punct: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok.kind == "punct" and tok.value == punct

    def expect(self, punct: str) -> None:
        tok = self.take()
        if not (tok.kind == "punct" and tok.value == punct):
            raise self.error(f"expected {punct!r}, found {self.describe(tok)}", tok)

    @staticmethod
    def describe(tok: _Token) -> str:
        return "the end of the text" if tok.kind == "end" else repr(tok.value) if tok.kind == "string" \
            else f"'{tok.value}'"

    def parse(self) -> NoiseLayer:
        layer = self.spec(0)
        if self.peek().kind != "end":
            raise self.error(f"unexpected {self.describe(self.peek())} after the layer", self.peek())
        return layer

    def spec(self, depth: int) -> NoiseLayer:
        first = self.peek()
        layers = [self.layer(depth)]
        while self.at("+"):
            self.take()
            layers.append(self.layer(depth))
        return layers[0] if len(layers) == 1 else self.build(_BY_KEY["combined"], first, [layers], {})

    def layer(self, depth: int) -> NoiseLayer:
        tok = self.take()
        if tok.kind != "name" or tok.value.lower() in _CONSTANTS:
            raise self.error(f"expected a noise layer name, found {self.describe(tok)}", tok)
        entry = _BY_KEY.get(_key(tok.value))
        if entry is None:
            raise self.error(self.unknown(tok.value), tok)
        args, kwargs = [], {}
        if self.at("("):
            self.take()
            while not self.at(")"):
                if self.peek().kind == "name" and self.at("=", 1):
                    key = self.take()
                    self.take()
                    name = key.value.replace("-", "_")
                    if name in kwargs:
                        raise self.error(f"{entry.name}: argument {name!r} given twice", key)
                    kwargs[name] = self.value(depth + 1)
                elif kwargs:
                    raise self.error(f"{entry.name}: positional argument after keyword arguments", self.peek())
                else:
                    args.append(self.value(depth + 1))
                if not self.at(")"):
                    self.expect(",")
            self.take()
        return self.build(entry, tok, args, kwargs)

    def value(self, depth: int):
        tok = self.peek()
        if depth > MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} levels", tok)
        if tok.kind in ("number", "string"):
            return self.take().value
        if tok.kind == "name" and tok.value.lower() in _CONSTANTS:
            return _CONSTANTS[self.take().value.lower()]
        if self.at("["):
            self.take()
            items = []
            while not self.at("]"):
                items.append(self.value(depth + 1))
                if not self.at("]"):
                    self.expect(",")
            self.take()
            return items
        if tok.kind == "name":
            return self.spec(depth)
        raise self.error(f"expected a value, found {self.describe(tok)}", tok)

    def build(self, entry: _Entry, tok: _Token, args: list, kwargs: dict) -> NoiseLayer:
        usage = entry.signature()
        try:
            inspect.signature(entry.factory).bind(*args, **kwargs)
        except TypeError as e:
            raise self.error(f"{entry.name}: {e}; usage: {usage}", tok) from None
        try:
            return entry.factory(*args, **kwargs)
        except (TypeError, ValueError) as e:
            raise self.error(f"{e}; usage: {usage}", tok) from None

    @staticmethod
    def unknown(name: str) -> str:
        close = difflib.get_close_matches(_key(name), list(_SPELLING), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(_SPELLING[k] for k in close)}?" if close else ""
        return f"unknown noise layer {name!r}{hint} (known: {', '.join(e.name for e in _ENTRIES)})"


def parse_noise(text: str | NoiseLayer) -> NoiseLayer:
    """A noise layer from its text spec (see the module docstring); a built layer is returned as is."""
    if isinstance(text, NoiseLayer):
        return text
    if not isinstance(text, str):
        raise TypeError(f"parse_noise expects a string or a NoiseLayer, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise NoiseSpecError(f"noise spec longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise NoiseSpecError("empty noise spec")
    return _Parser(text).parse()


def canonical_spec(text: str) -> str:
    """A noise spec as the trainer writes it back (checks it: raises NoiseSpecError when it is not valid)."""
    return parse_noise(text).spec()


def pool_layers(text: str) -> list[tuple[str, str]]:
    """(layer name, canonical spec) of each layer of a pool: the layers of ``Combined([...])``, or the one layer."""
    from .combined import Combined

    layer = parse_noise(text)
    layers = list(layer.layers) if isinstance(layer, Combined) else [layer]
    return [(type(item).__name__, item.spec()) for item in layers]
