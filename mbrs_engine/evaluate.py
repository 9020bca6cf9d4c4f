"""Robustness evaluation: images x attacks x strengths -> bit error rate, PSNR, SSIM and message recovery.

Two protocols:

* ``native``: each image is centre-cropped to a square and resized
  (antialiased) to the model's H x H, so the networks run on the image itself
  (the paper's protocol).
* ``full``: each image keeps its own size; embedding and decoding go through
  the full-size path of :class:`~mbrs_engine.watermarker.Watermarker`, with
  the embed-time refinement the app uses (:mod:`mbrs_engine.refinement`;
  ``EvalConfig(refine=False)`` measures the networks alone).

For every image and strength, a message is embedded: random text filling the
model's capacity, coded by :mod:`mbrs_engine.payload` (random raw bits when
the model carries raw bits only), drawn from a generator seeded by
``(seed, image index)``, so runs are deterministic.  PSNR and SSIM compare the
8-bit marked image with the 8-bit cover (:mod:`mbrs_engine.metrics`).  Each
attack chain (:mod:`mbrs_engine.attacks`, noise seeded the same way; a chain
with ranges, ``rotate:-5~5``, is drawn anew for each image from a generator
seeded by ``(seed, image index, attack index)``) is then applied; BER counts
wrong raw bits from :meth:`Watermarker.decode_bits` (no
search) and ``recovered`` is the share of images whose text
:meth:`Watermarker.decode` (with its crop search) reads back exactly.

The functions are reusable: :func:`evaluate` takes any list of images, and
:func:`format_table`, :func:`rows_to_csv`, :func:`rows_to_json` and
:func:`robustness_summary` (the ``metrics`` of a model file) take its rows.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from . import payload
from .attacks import apply_chain, chain_spec, draw_chain
from .imageio import atomic_write, list_images, open_image, split_alpha
from .metrics import bit_errors, image_psnr, ssim

PROTOCOLS = ("native", "full")
DEFAULT_ATTACKS = ("identity", "jpeg:90", "jpeg:75", "jpeg:50", "crop:0.8", "resize:0.5", "blur:1", "noise:5")
#: The geometric edits people make (the synchronisation issue's targets), each drawn anew per image: a crop of
#: 50-90 % anywhere with its aspect changed by up to 4/3 either way then JPEG 85; a crop of 25-50 % anywhere;
#: a rotation within +-5 degrees then JPEG 85; a mirror; a crop of 60-90 % brought to a 1080-pixel long side and
#: re-encoded at JPEG 80; and what already passes (JPEG 50, 30, resize to 25 %).  Then, beyond the issue's
#: targets: a photo turned by quarter turns (to portrait, upside down) and cropped anywhere, a mirrored one cropped
#: anywhere, a crop turned by up to 15 degrees either way (JPEG 85 each), the photo resized to another aspect (its
#: width by 2/3 to 3/2, then JPEG 85), a crop of 60-90 % exported at another aspect (its width by 3/4 to 4/3),
#: brought to a 1080-pixel long side, JPEG 80, and the sides leant by up to 3 degrees either way (a shear, as a
#: perspective correction leans them), JPEG 85, and a keystone perspective (the top or bottom edge shrunk by up
#: to 3 % of the width at each end), JPEG 85, and a crop of 60-90 % mirrored, or turned by quarter turns, brought to
#: a 1080-pixel long side, JPEG 80 (a photo posted mirrored or turned), and the photo on a larger flat canvas
#: (a frame, a letterbox: 50-90 % of its area, anywhere, any grey) brought to 1080 px, JPEG 85.  New edits go at the
#: end: an edit's draws depend on its place.
GEOMETRIC_SUITE = ("crop:0.5~0.9,0.75~1.333,0~1,0~1+jpeg:85", "crop:0.25~0.5,1,0~1,0~1", "rotate:-5~5+jpeg:85",
                   "flip", "crop:0.6~0.9,1,0~1,0~1+fit:1080+jpeg:80", "jpeg:50", "jpeg:30", "resize:0.25",
                   "turn:1~3+crop:0.5~0.9,0.75~1.333,0~1,0~1+jpeg:85", "flip+crop:0.5~0.9,0.75~1.333,0~1,0~1+jpeg:85",
                   "crop:0.6~0.9,1,0~1,0~1+rotate:-15~15+jpeg:85", "stretch:0.667~1.5+jpeg:85",
                   "crop:0.6~0.9,1,0~1,0~1+stretch:0.75~1.333+fit:1080+jpeg:80", "shear:-3~3+jpeg:85",
                   "keystone:-0.03~0.03+jpeg:85", "flip+crop:0.6~0.9,1,0~1,0~1+fit:1080+jpeg:80",
                   "turn:1~3+crop:0.6~0.9,1,0~1,0~1+fit:1080+jpeg:80",
                   "pad:0.5~0.9,0.75~1.333,0~1,0~1,0~1+fit:1080+jpeg:85")
SUITES = {"default": DEFAULT_ATTACKS, "geometric": GEOMETRIC_SUITE}
_TEXT_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
_SSIM_MIN_SIDE = 11

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EvalConfig:
    """What to measure."""

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    strengths: tuple[float, ...] = (1.0,)
    protocol: str = "native"
    seed: int = 0
    key: str | None = None
    refine: bool | None = None  # embed-time refinement; None: for the full protocol only (native is the paper's)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if not self.attacks or not self.strengths:
            raise ValueError("give at least one attack and one strength")
        for text in self.attacks:
            draw_chain(text)

    @property
    def refined(self) -> bool:
        return self.protocol == "full" if self.refine is None else self.refine


@dataclass
class EvalRow:
    """Averages over the images for one (attack, strength)."""

    attack: str
    strength: float
    images: int
    ber: float  # mean bit error rate of the raw bits
    ber_max: float
    psnr: float  # marked vs cover, dB (mean over images)
    ssim: float
    recovered: float | None  # share of images whose message was read back exactly (None: raw-bits model)


@dataclass
class _Samples:
    ber: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    recovered: list[bool] = field(default_factory=list)


# ---------------------------------------------------------------- images


def native_view(img: Image.Image, size: int) -> Image.Image:
    """Centre square crop resized (antialiased) to ``size`` x ``size``."""
    side = min(img.size)
    left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
    square = img.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)


def prepare_images(images: list[tuple[str, Image.Image]], protocol: str, image_size: int):
    """RGB covers for a protocol (alpha dropped)."""
    out = []
    for name, img in images:
        rgb, _ = split_alpha(img)
        out.append((name, native_view(rgb, image_size) if protocol == "native" else rgb))
    return out


def load_folder(folder: str | Path, limit: int | None = None) -> list[tuple[str, Image.Image]]:
    """(file name, image) for the images of a folder, sorted by name."""
    paths = list_images(folder)[:limit]
    if not paths:
        raise ValueError(f"no images (.png, .jpg, .webp, .tif, .bmp, .gif) in '{folder}'")
    return [(p.name, open_image(p)) for p in paths]


# ---------------------------------------------------------------- measuring


def image_message(wm, seed: int, index: int, key: str | None = None) -> tuple[np.ndarray, str | None]:
    """(bits, text) image ``index`` gets: capacity-filling random text, or random raw bits without a text
    layout."""
    rng = np.random.default_rng([seed, index])
    try:
        capacity = wm.capacity
    except payload.PayloadError:
        return rng.integers(0, 2, wm.message_length).astype(np.uint8), None
    text = "".join(rng.choice(list(_TEXT_ALPHABET), capacity))
    return payload.encode_text(text, wm.message_length, key), text


def _quality(cover: Image.Image, marked: Image.Image) -> tuple[float, float]:
    p = image_psnr(cover.convert("RGB"), marked.convert("RGB"))
    s = float(ssim(cover, marked)[0]) if min(cover.size) >= _SSIM_MIN_SIDE else math.nan
    return p, s


def attacked_image(marked: Image.Image, cover: Image.Image, template: str, seed: int, index: int,
                   attack_index: int) -> tuple[Image.Image, tuple]:
    """Image ``index`` marked, after attack ``attack_index`` of the run (``template``, its ranges drawn for this
    image), and the chain drawn: what :func:`evaluate` decodes."""
    chain = draw_chain(template, np.random.default_rng([seed, index, attack_index, 1]))
    noise_seed = int(np.random.default_rng([seed, index, attack_index]).integers(2**31))
    return apply_chain(marked, chain, noise_seed, original=cover), chain


def _measure_image(wm, index: int, cover: Image.Image, config: EvalConfig, samples) -> None:
    bits, text = image_message(wm, config.seed, index, config.key)
    for strength in config.strengths:
        marked = wm.embed_bits(cover, bits, strength, refine=config.refined)
        quality = _quality(cover, marked)
        for a, template in enumerate(config.attacks):
            attacked, _ = attacked_image(marked, cover, template, config.seed, index, a)
            bucket = samples[(a, strength)]
            bucket.ber.append(bit_errors(wm.decode_bits(attacked), bits) / bits.size)
            bucket.psnr.append(quality[0])
            bucket.ssim.append(quality[1])
            if text is not None:
                bucket.recovered.append(wm.decode(attacked, key=config.key).message == text)


def _row(attack: str, strength: float, s: _Samples) -> EvalRow:
    recovered = float(np.mean(s.recovered)) if s.recovered else None
    return EvalRow(attack, strength, len(s.ber), float(np.mean(s.ber)), float(np.max(s.ber)),
                   float(np.mean(s.psnr)), float(np.nanmean(s.ssim)) if not all(map(math.isnan, s.ssim)) else math.nan,
                   recovered)


def evaluate(wm, images: list[tuple[str, Image.Image]], config: EvalConfig = EvalConfig(),
             progress: Progress | None = None) -> list[EvalRow]:
    """Measure every (attack, strength) over the images; one row each, in the given order."""
    if not images:
        raise ValueError("no images to evaluate")
    covers = prepare_images(images, config.protocol, wm.image_size)
    samples = {(a, s): _Samples() for a in range(len(config.attacks)) for s in config.strengths}
    for index, (name, cover) in enumerate(covers):
        _measure_image(wm, index, cover, config, samples)
        if progress:
            progress(index + 1, len(covers), name)
    return [_row(_label(config.attacks[a]), s, samples[(a, s)])
            for s in config.strengths for a in range(len(config.attacks))]


def _label(template: str) -> str:
    """A row's attack: the canonical text of a fixed chain, the template itself for one with ranges."""
    return template.strip() if "~" in template else chain_spec(draw_chain(template))


# ---------------------------------------------------------------- reports


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def format_table(rows: list[EvalRow]) -> str:
    """A plain-text table."""
    header = ("attack", "strength", "images", "BER %", "max BER %", "PSNR dB", "SSIM", "recovered %")
    lines = [(r.attack, f"{r.strength:g}", str(r.images), _percent(r.ber), _percent(r.ber_max),
              f"{r.psnr:.2f}", "-" if math.isnan(r.ssim) else f"{r.ssim:.4f}", _percent(r.recovered))
             for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, lines)])


def rows_to_csv(rows: list[EvalRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EvalRow.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})
    return buf.getvalue()


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def rows_to_json(rows: list[EvalRow], info: dict | None = None) -> str:
    data = {**(info or {}), "rows": [{k: _json_safe(v) for k, v in asdict(r).items()} for r in rows]}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_reports(rows: list[EvalRow], out_dir: str | Path, info: dict | None = None) -> list[Path]:
    """``results.txt``, ``results.csv`` and ``results.json`` in ``out_dir`` (created)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {"results.txt": format_table(rows) + "\n", "results.csv": rows_to_csv(rows),
             "results.json": rows_to_json(rows, info)}
    paths = []
    for name, text in texts.items():
        atomic_write(out_dir / name, lambda fh, t=text: fh.write(t.encode("utf-8")))
        paths.append(out_dir / name)
    return paths


def robustness_summary(rows: list[EvalRow], protocol: str) -> dict:
    """The ``metrics`` section of a model file: quality and BER / recovery per attack at strength 1 (or the first)."""
    strength = 1.0 if any(r.strength == 1.0 for r in rows) else rows[0].strength
    chosen = [r for r in rows if r.strength == strength]
    summary = {"protocol": protocol, "strength": strength, "images": chosen[0].images,
               "psnr": round(chosen[0].psnr, 2), "ssim": _json_safe(round(chosen[0].ssim, 4)),
               "ber": {r.attack: round(r.ber, 5) for r in chosen}}
    if chosen[0].recovered is not None:
        summary["recovered"] = {r.attack: round(r.recovered, 4) for r in chosen}
    return summary
