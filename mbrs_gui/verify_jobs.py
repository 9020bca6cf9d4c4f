"""The Verify tab's background jobs (no widgets): attack preview, decode, the robustness sweep, a folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage

from mbrs_engine import payload, verification
from mbrs_engine.payload import DecodeResult
from mbrs_engine.verification import Sweep, Verdict
from mbrs_engine.watermarker import decode_with_any, installed_watermarkers

from .attack_chain import Chain
from .imaging import PREVIEW_SIDE, fit_size
from .qimage import pil_to_qimage



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


def _models(wm, every_model: bool) -> list:
    """``wm``, then (with ``every_model``) every other installed model."""
    if not every_model:
        return [wm]
    return [wm, *(m for m in installed_watermarkers() if m.metadata.get("path") != wm.metadata.get("path"))]


def decode(ctx, wm, attacked: Attacked, message: str | None, key: str | None, every_model: bool = False) -> Decoded:
    """Read the attacked image with ``wm`` or, with ``every_model``, with every installed model, ``wm`` first
    (:func:`mbrs_engine.watermarker.decode_with_any`: the p-value counts every model tried)."""
    ctx.progress(0, 0, "Decoding")
    models = _models(wm, every_model)
    result = decode_with_any(attacked.image, models, key=key)
    used = next((m for m in models if m.name == result.model), wm)
    try:
        bits = expected_bits(used, message, key)
    except payload.PayloadError:  # the message does not fit the model that read it: no reference
        bits = None
    return Decoded(result, bits, attacked, [m.name for m in models])


def sweep(ctx, wm, image: Image.Image, message: str | None, key: str | None) -> Sweep:
    """The engine's robustness sweep (:func:`mbrs_engine.verification.sweep`) with progress and cancel."""
    return verification.sweep(wm, image, message, key, progress=ctx.progress)


@dataclass
class FolderVerified:
    folder: Path
    verdicts: list[Verdict]
    models: list[str]  # the models tried, in order
    key_used: bool


def verify_folder(ctx, wm, folder: Path, paths: list[Path], key: str | None, every_model: bool,
                  with_sweep: bool = True) -> FolderVerified:
    """Every file read with ``wm`` (and every installed model), marked ones swept: the engine's
    :func:`~mbrs_engine.verification.verify_files`, with progress and cancel."""
    models = _models(wm, every_model)
    verdicts = verification.verify_files(paths, models, key=key, with_sweep=with_sweep, progress=ctx.progress)
    return FolderVerified(folder, verdicts, [m.name for m in models], key is not None)
