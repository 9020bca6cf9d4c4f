"""The Embed tab's documents and the background jobs on them (no widgets; each job runs in a worker).

An :class:`ImageDocument` is one opened image: its pixels, the metadata to keep
when saving, its strength, and — once the network has run for the current
message — its :class:`~mbrs_gui.imaging.Residual`.  The jobs (:func:`load_documents`,
:func:`embed`, :func:`refine`, :func:`auto_strength`, :func:`save_document`,
:func:`save_all`) take a :class:`~mbrs_gui.workers.TaskContext` for progress
and cancellation and only read the documents (except :func:`check_existing_mark`,
which caches what it found in the document); the GUI thread applies results.
"""
from __future__ import annotations

import csv
import io
import itertools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage

from mbrs_engine import payload
from mbrs_engine.attacks import apply_chain, is_geometric, parse_chain
from mbrs_engine.metrics import bit_errors
from mbrs_engine.parallel import default_workers, run_in_threads
from mbrs_engine.imageio import (ImageLoadError, ImageWarning, LoadedImage, atomic_write, join_alpha, load_image,
                                 open_image, save_like, split_alpha)

from .imaging import PREVIEW_SIDE, Preview, Residual, fit_size, paper_difference, visibility_heat
from .qimage import array_to_qimage, pil_to_qimage, thumbnail

_keys = itertools.count(1)
#: Output formats of "Save all": label -> extension.
OUTPUT_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WebP": ".webp", "TIFF": ".tif"}


@dataclass(frozen=True)
class Signature:
    """What a residual was computed for: message, key, model (the network's inputs), the layout and whether a
    whole-frame residual was refined."""

    text: str
    key: str | None
    model: int  # id() of the Watermarker
    refine: bool = True
    tiled: bool = True


@dataclass
class ImageDocument:
    loaded: LoadedImage
    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: Image.Image | None
    thumb: QImage
    original_preview: QImage
    strength: float = 1.0
    key: int = field(default_factory=lambda: next(_keys))
    residual: Residual | None = None
    preview: Preview | None = None
    signature: Signature | None = None
    original_full: QImage | None = None
    saved_state: tuple | None = None  # (signature, strength) when last saved
    saved_path: Path | None = None
    reads_back: bool | None = None  # whether the message read back from the file last saved
    marks_found: dict = field(default_factory=dict)  # (model id, key) -> message of a watermark already there, or None
    remark_allowed: bool = False  # the user agreed to embed over the watermark found
    notes: list[str] = field(default_factory=list)  # what opening it changed (16-bit or grey input, animation)

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def name(self) -> str:
        return self.loaded.path.name

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    def state(self) -> tuple:
        return self.signature, round(self.strength, 4)

    @property
    def is_marked(self) -> bool:
        return self.residual is not None and bool(self.signature and self.signature.text)

    @property
    def unsaved(self) -> bool:
        return self.is_marked and self.saved_state != self.state()

    def marked_image(self, strength: float | None = None) -> Image.Image:
        """The 8-bit watermarked image to save (alpha re-attached)."""
        rgb = self.residual.render(self.strength if strength is None else strength)
        return join_alpha(Image.fromarray(rgb, "RGB"), self.alpha)


# ---------------------------------------------------------------- jobs


def open_document(path: Path) -> ImageDocument:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # said in the status bar, not in a dialog
        loaded = load_image(path)
    rgb_img, alpha = split_alpha(loaded.image)
    rgb = np.asarray(rgb_img, dtype=np.uint8)
    preview = rgb_img.resize(fit_size(*rgb_img.size, PREVIEW_SIDE), Image.Resampling.BOX) \
        if max(rgb_img.size) > PREVIEW_SIDE else rgb_img
    notes = [str(w.message) for w in caught if issubclass(w.category, ImageWarning)]
    return ImageDocument(loaded, rgb, alpha, thumbnail(rgb_img, 96), pil_to_qimage(preview), notes=notes)


def load_documents(ctx, paths: list[Path]) -> tuple[list[ImageDocument], list[tuple[Path, str]]]:
    """Open the images; returns (documents, [(path, reason)] for the files that could not be read)."""
    docs, failures = [], []
    for i, path in enumerate(paths):
        ctx.progress(i, len(paths), f"Opening {Path(path).name}")
        try:
            docs.append(open_document(Path(path)))
        except (ImageLoadError, OSError, ValueError) as exc:
            failures.append((Path(path), str(exc)))
    return docs, failures


class AlreadyMarked(ValueError):
    """The image already carries a watermark of this model; embedding again can destroy both marks."""

    def __init__(self, message: str):
        super().__init__(f"This image already carries a watermark: {message!r}. Embedding another one over it "
                         f"can destroy both.")
        self.message = message


def check_existing_mark(wm, doc: ImageDocument, signature: Signature) -> None:
    """Raise :class:`AlreadyMarked` if the image carries a watermark (without a key or with this one) and the
    user has not agreed to embed over it; each (model, key) is looked for once per document."""
    found_key = (signature.model, signature.key)
    if found_key not in doc.marks_found:
        existing = wm.existing_mark(Image.fromarray(doc.rgb, "RGB"), signature.key)
        doc.marks_found[found_key] = existing.message if existing is not None else None
    if doc.marks_found[found_key] is not None and not doc.remark_allowed:
        raise AlreadyMarked(doc.marks_found[found_key])


@dataclass
class EmbedResult:
    doc_key: int
    signature: Signature
    residual: Residual
    preview: Preview
    seconds: float


def embed(ctx, wm, doc: ImageDocument, signature: Signature) -> EmbedResult:
    """Run the networks once (refined if the signature says so: :meth:`Watermarker.prepare`) and prepare the
    render at strength 1, the histogram and the preview."""
    start = time.perf_counter()
    ctx.progress(0, 0, f"Embedding into {doc.name}")
    check_existing_mark(wm, doc, signature)

    def refining(step: int, steps: int) -> None:
        ctx.progress(step, steps, f"Refining the watermark of {doc.name} against attacks ({step} of {steps})")

    prepared = wm.prepare(Image.fromarray(doc.rgb, "RGB"), signature.text, key=signature.key,
                          refine=signature.refine, progress=refining, tiled=signature.tiled)
    ctx.check()
    residual = Residual(prepared)
    residual.histogram()
    ctx.check()
    return EmbedResult(doc.key, signature, residual, residual.preview(), time.perf_counter() - start)


@dataclass
class Refinement:
    """The full-resolution views, the SSIM and the visibility for one (document, signature, strength)."""

    doc_key: int
    state: tuple
    marked: QImage
    difference: QImage
    original: QImage | None
    psnr: float
    ssim: float
    ssim_sampled: bool
    visibility: float  # mbrs_engine.visibility's figure (about 1: just noticeable)
    heat: QImage  # where the mark may show (imaging.visibility_heat)


def refine(ctx, doc: ImageDocument, residual: Residual, state: tuple, strength: float,
           need_original: bool) -> Refinement:
    marked = residual.render(strength)
    ctx.check()
    difference = paper_difference(marked.astype(np.int16) - residual.original)
    ctx.check()
    marked_q, difference_q = array_to_qimage(marked), array_to_qimage(difference)
    original_q = array_to_qimage(residual.original) if need_original else None
    ctx.check()
    ssim, sampled = residual.ssim(strength)
    ctx.check()
    seen_figure, seen = residual.visibility(strength, check=ctx.check)
    heat_q = array_to_qimage(visibility_heat(residual.original, seen))
    return Refinement(doc.key, state, marked_q, difference_q, original_q, residual.psnr(strength), ssim, sampled,
                      seen_figure, heat_q)


def chain_needs_search(chain_text: str) -> bool:
    return is_geometric(parse_chain(chain_text))


@dataclass
class Trial:
    """One strength tried by :func:`auto_strength`: does the message read back under the attack, with margin?"""

    strength: float
    reads_back: bool  # the exact message, by hard-decision BCH, within the margin
    bit_errors: int  # raw bit errors of the attacked image (before correction)


def margin_errors(wm) -> int:
    """The most raw bit errors a strength may leave and still count as surviving: half of what BCH corrects,
    so the mark keeps headroom for an attack a little stronger than the one tested."""
    return wm.layout.bch_t // 2


def try_strength(wm, residual: Residual, strength: float, chain, text: str, key: str | None,
                 search: bool) -> Trial:
    """Attack the image watermarked at ``strength`` and read it back as ``mbrs decode`` would."""
    attacked = apply_chain(Image.fromarray(residual.render(strength), "RGB"), chain)
    result = wm.decode(attacked, key=key, search=search)
    bits = payload.encode_text(text, wm.message_length, key)
    errors = bit_errors(result.soft, bits)
    reads_back = (result.detected and result.message == text and not result.soft_decoded
                  and result.bit_errors_corrected is not None and result.bit_errors_corrected <= margin_errors(wm))
    return Trial(strength, reads_back, errors)


@dataclass
class AutoStrength:
    doc_key: int
    strength: float | None  # None: no strength tried survives
    chain: str
    errors_at_best: int  # fewest raw bit errors seen (when nothing survives)
    margin: int = 0  # raw bit errors a surviving strength may leave (:func:`margin_errors`)


#: Strengths tried from the lowest up; the first that survives is refined by bisection below it.
AUTO_LADDER = (0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def auto_strength(ctx, wm, doc: ImageDocument, residual: Residual, signature: Signature, chain_text: str,
                  ladder: tuple[float, ...] = AUTO_LADDER, steps: int = 5) -> AutoStrength:
    """The lowest strength whose message reads back under the attack with margin (:func:`try_strength`).

    Climbs ``ladder`` until a strength survives (too high a strength can fail
    again, through clipping, so the search comes from below), then bisects
    between it and the last failing one.
    """
    chain = parse_chain(chain_text)
    search = chain_needs_search(chain_text)
    total = len(ladder) + steps

    def trial(strength: float, done: int) -> Trial:
        ctx.progress(done, total, f"Auto strength: trying {strength:.2f}")
        return try_strength(wm, residual, strength, chain, signature.text, signature.key, search)

    fewest, low, high = None, None, None
    for i, strength in enumerate(ladder):
        result = trial(strength, i)
        if result.reads_back:
            high = strength
            break
        fewest = result.bit_errors if fewest is None else min(fewest, result.bit_errors)
        low = strength
    if high is None:
        return AutoStrength(doc.key, None, chain_text, fewest or 0, margin_errors(wm))
    if low is not None:
        for i in range(steps):
            middle = round((low + high) / 2, 2)  # strengths on the slider's 0.01 grid: the result is one tested
            if not low < middle < high:
                break
            if trial(middle, len(ladder) + i).reads_back:
                high = middle
            else:
                low = middle
    return AutoStrength(doc.key, high, chain_text, 0, margin_errors(wm))


@dataclass
class Saved:
    path: Path
    reads_back: bool  # the message read back from the saved file


def save_and_read_back(ctx, wm, doc: ImageDocument, image: Image.Image, path: Path, quality: int,
                       signature: Signature) -> Saved:
    """Save (replacing a file the user agreed to replace) and read the message back from the saved file."""
    save_like(image, path, doc.loaded, quality=quality, replace=True)
    ctx.progress(0, 0, f"Reading the message back from {path.name}")
    return Saved(path, wm.reads_back(open_image(path), signature.text, signature.key))


def save_document(ctx, wm, doc: ImageDocument, path: Path, quality: int, strength: float) -> Saved:
    ctx.progress(0, 0, f"Saving {path.name}")
    return save_and_read_back(ctx, wm, doc, doc.marked_image(strength), path, quality, doc.signature)


REPORT_FIELDS = ("input", "output", "width", "height", "message", "keyed", "strength", "psnr_db", "ssim",
                 "ssim_estimated", "reads_back", "seconds")


@dataclass
class SaveAllResult:
    saved: list[tuple[int, Path, Signature, float, Residual | None, Preview | None, bool]]  # per document; last:
    # whether the message reads back
    report: Path | None
    rows: list[dict]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (document key, the watermark already there)


def output_path(folder: Path, doc: ImageDocument, extension: str, suffix: str) -> Path:
    return folder / f"{doc.path.stem}{suffix}{extension}"


def save_all(ctx, wm, docs: list[ImageDocument], signature: Signature, folder: Path, extension: str, quality: int,
             suffix: str, write_report: bool) -> SaveAllResult:
    """Embed (where needed), save each document at its own strength, read each back, and write a CSV report;
    images that already carry a watermark the user did not agree to embed over are skipped.  Documents are
    worked on :func:`mbrs_engine.parallel.default_workers` at a time."""

    def one(doc: ImageDocument):
        start = time.perf_counter()
        residual, preview = doc.residual, doc.preview
        if residual is None or doc.signature != signature:
            try:
                result = embed(ctx, wm, doc, signature)
            except AlreadyMarked as exc:
                return exc
            residual, preview = result.residual, result.preview
        ctx.check()
        target = output_path(folder, doc, extension, suffix)
        rgb = residual.render(doc.strength)
        result = save_and_read_back(ctx, wm, doc, join_alpha(Image.fromarray(rgb, "RGB"), doc.alpha), target,
                                    quality, signature)
        ssim, sampled = residual.ssim(doc.strength)
        row = {"input": str(doc.path), "output": str(target), "width": doc.size[0], "height": doc.size[1],
               "message": signature.text, "keyed": signature.key is not None, "strength": doc.strength,
               "psnr_db": round(residual.psnr(doc.strength), 3),
               "ssim": "" if math.isnan(ssim) else round(ssim, 5), "ssim_estimated": sampled,
               "reads_back": result.reads_back, "seconds": round(time.perf_counter() - start, 3)}
        return row, (doc.key, target, signature, doc.strength, residual, preview, result.reads_back)

    def done(count: int, i: int, outcome) -> None:
        if isinstance(outcome, Exception) and not isinstance(outcome, AlreadyMarked):
            raise outcome  # a failure or a cancel ends the whole run, as it did one image at a time
        ctx.progress(count, len(docs), f"Saved {count} of {len(docs)}: {docs[i].name}")

    ctx.progress(0, len(docs), f"Saving {len(docs)} images")
    saved, rows, skipped = [], [], []
    for doc, outcome in zip(docs, run_in_threads(docs, one, default_workers(), done)):
        if isinstance(outcome, AlreadyMarked):
            skipped.append((doc.key, outcome.message))
        else:
            rows.append(outcome[0])
            saved.append(outcome[1])
    report = None
    if write_report:
        ctx.progress(len(docs), len(docs), "Writing the report")
        report = folder / "mbrs-report.csv"
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(report, lambda fh: fh.write(buf.getvalue().encode("utf-8")))
    return SaveAllResult(saved, report, rows, skipped)


@dataclass
class VerifyInput:
    """What the Embed tab hands to the Verify tab: the saved-to-be image and what is known about it."""

    image: Image.Image
    name: str
    original: Image.Image | None = None
    message: str | None = None
    key: str | None = None
