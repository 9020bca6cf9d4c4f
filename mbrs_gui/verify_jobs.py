"""The Verify tab's background jobs (no widgets): attack preview, decode, and the robustness sweep."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage

from mbrs_engine import payload
from mbrs_engine.attacks import apply_chain, parse_chain
from mbrs_engine.payload import DecodeResult
from mbrs_engine.watermarker import decode_with_any, installed_watermarkers

from .attack_chain import Chain
from .imaging import PREVIEW_SIDE, fit_size
from .qimage import pil_to_qimage

JPEG_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
CROP_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass
class Attacked:
    token: object  # identifies the (image, chain) it was made from
    image: Image.Image
    preview: QImage
    full: QImage


def attack(ctx, token, image: Image.Image, original: Image.Image | None, chain: Chain) -> Attacked:
    ctx.progress(0, 0, "Attacking the image")
    attacked = chain.apply(image, original, check=ctx.check)
    ctx.check()
    small = attacked.resize(fit_size(*attacked.size, PREVIEW_SIDE), Image.Resampling.BOX) \
        if max(attacked.size) > PREVIEW_SIDE else attacked
    return Attacked(token, attacked, pil_to_qimage(small), pil_to_qimage(attacked))


def expected_bits(wm, message: str | None, key: str | None) -> np.ndarray | None:
    """The raw bits a known message was embedded as (None when unknown); raises if it cannot be coded."""
    if not message:
        return None
    return payload.encode_text(message, wm.message_length, key)


@dataclass
class Decoded:
    result: DecodeResult  # .model names the model that read it
    expected: np.ndarray | None  # bits embedded, when the message is known (for the model that read it)
    attacked: Attacked
    models: list[str]  # the models tried, in order


def decode(ctx, wm, attacked: Attacked, message: str | None, key: str | None, every_model: bool = False) -> Decoded:
    """Read the attacked image with ``wm`` or, with ``every_model``, with every installed model, ``wm`` first
    (:func:`mbrs_engine.watermarker.decode_with_any`: the p-value counts every model tried)."""
    ctx.progress(0, 0, "Decoding")
    models = [wm]
    if every_model:
        models += [m for m in installed_watermarkers() if m.metadata.get("path") != wm.metadata.get("path")]
    result = decode_with_any(attacked.image, models, key=key)
    used = next((m for m in models if m.name == result.model), wm)
    try:
        bits = expected_bits(used, message, key)
    except payload.PayloadError:  # the message does not fit the model that read it: no reference
        bits = None
    return Decoded(result, bits, attacked, [m.name for m in models])


def reference_bits(wm, image: Image.Image, message: str | None, key: str | None) -> np.ndarray:
    """The bits to measure errors against: the known message's, else those of a watermark found in the image."""
    bits = expected_bits(wm, message, key)
    if bits is not None:
        return bits
    clean = wm.decode(image, key=key)
    if not clean.detected:
        raise ValueError("No watermark was found in this image, and no expected message is given: the sweep needs "
                         "one of them to count bit errors.")
    return np.asarray(clean.corrected_bits, dtype=np.uint8)


@dataclass
class Sweep:
    qualities: list[int]
    jpeg_ber: list[float]
    jpeg_recovered: list[bool]
    fractions: list[float]
    crop_ber: list[float]
    crop_recovered: list[bool]


def sweep(ctx, wm, image: Image.Image, message: str | None, key: str | None) -> Sweep:
    """BER (and whether the message is read back) under JPEG 10..90 and central crops of 50..100 % of the area."""
    total = len(JPEG_QUALITIES) + len(CROP_FRACTIONS) + 1
    ctx.progress(0, total, "Reading the watermark")
    bits = reference_bits(wm, image, message, key).astype(bool)
    expected_text = message
    out = Sweep(list(JPEG_QUALITIES), [], [], list(CROP_FRACTIONS), [], [])
    attacks = [("jpeg", q) for q in JPEG_QUALITIES] + [("crop", f) for f in CROP_FRACTIONS]
    for i, (name, value) in enumerate(attacks):
        ctx.progress(i + 1, total, f"Sweep: {name} {value:g}")
        result = wm.decode(apply_chain(image, parse_chain(f"{name}:{value:g}")), key=key)
        ber = float(np.mean((np.asarray(result.soft) > 0.5) != bits))
        recovered = result.detected and (expected_text is None or result.message == expected_text)
        if name == "jpeg":
            out.jpeg_ber.append(ber)
            out.jpeg_recovered.append(recovered)
        else:
            out.crop_ber.append(ber)
            out.crop_recovered.append(recovered)
    return out
