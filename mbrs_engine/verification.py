"""Verifying images: each read with every given model, a robustness sweep, and the evidence as CSV or HTML.

- :func:`sweep`: bit errors (and whether the message reads back) under JPEG
  10..90 and central crops of 50..100 % of the area, for one marked image.
- :func:`verify_files`: one :class:`Verdict` per file (detected or not, the
  message, p-value, model, where it was found, or why the file could not be
  read), with a thumbnail and, for marked images, a sweep.
- :func:`write_csv` and :func:`write_html` (a self-contained evidence report:
  thumbnails as data URIs, sweep plots as inline SVG, nothing fetched).

The app's Verify tab and ``mbrs verify-report`` both run these.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from . import __version__, payload
from .attacks import apply_chain, parse_chain
from .imageio import ImageLoadError, atomic_write, open_image
from .metrics import bit_errors
from .payload import DEFAULT_THRESHOLD

JPEG_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
CROP_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
THUMBNAIL_SIDE = 160
#: ``progress(done, total, what)``; it may raise to cancel.
Progress = Callable[[int, int, str], None]


# ---------------------------------------------------------------- the sweep


@dataclass
class Sweep:
    qualities: list[int]
    jpeg_ber: list[float]
    jpeg_recovered: list[bool]
    fractions: list[float]
    crop_ber: list[float]
    crop_recovered: list[bool]

    def lowest_quality(self) -> int | None:
        """The lowest JPEG quality tried whose message read back (None: none did)."""
        return next((q for q, ok in zip(self.qualities, self.jpeg_recovered) if ok), None)

    def smallest_crop(self) -> float | None:
        """The smallest area fraction kept by a central crop whose message read back (None: none did)."""
        return next((f for f, ok in zip(self.fractions, self.crop_recovered) if ok), None)

    def summary(self) -> str:
        q, f = self.lowest_quality(), self.smallest_crop()
        jpeg = f"read back down to JPEG quality {q}" if q is not None else "lost under every JPEG quality tried"
        crop = f"crops keeping {100 * f:.0f} % of the area" if f is not None else "lost under every crop tried"
        return f"Message {jpeg}; {crop}."


def reference_bits(wm, image: Image.Image, message: str | None, key: str | None) -> np.ndarray:
    """The bits to count errors against: the known message's, else those of the watermark found in the image."""
    if message:
        return payload.encode_text(message, wm.message_length, key)
    clean = wm.decode(image, key=key)
    if not clean.detected:
        raise ValueError("No watermark was found in this image, and no expected message is given: the sweep needs "
                         "one of them to count bit errors.")
    return np.asarray(clean.corrected_bits, dtype=np.uint8)


def sweep(wm, image: Image.Image, message: str | None = None, key: str | None = None,
          progress: Progress | None = None) -> Sweep:
    """BER and read-back of ``image`` under JPEG 10..90 and central crops keeping 50..100 % of the area.

    Without ``message``, the message found in the image is the reference (and
    "reads back" means the watermark is detected)."""
    attacks = [("jpeg", q) for q in JPEG_QUALITIES] + [("crop", f) for f in CROP_FRACTIONS]
    if progress:
        progress(0, len(attacks) + 1, "Reading the watermark")
    bits = reference_bits(wm, image, message, key).astype(bool)
    out = Sweep(list(JPEG_QUALITIES), [], [], list(CROP_FRACTIONS), [], [])
    for i, (name, value) in enumerate(attacks):
        if progress:
            progress(i + 1, len(attacks) + 1, f"Sweep: {name} {value:g}")
        result = wm.decode(apply_chain(image, parse_chain(f"{name}:{value:g}")), key=key)
        ber = bit_errors(result.soft, bits) / bits.size
        recovered = result.detected and (message is None or result.message == message)
        (out.jpeg_ber if name == "jpeg" else out.crop_ber).append(ber)
        (out.jpeg_recovered if name == "jpeg" else out.crop_recovered).append(recovered)
    return out


# ---------------------------------------------------------------- a folder


@dataclass
class Verdict:
    """What verifying one file found."""

    path: Path
    status: str                       # "detected", "not detected" or "unreadable"
    message: str | None = None
    p_value: float | None = None
    model: str | None = None          # the model that read it (or the first tried, when none did)
    frame: str | None = None          # where it was found ("full frame", "crop 0.8 center", ...)
    bit_errors_corrected: int | None = None
    size: tuple[int, int] | None = None
    error: str | None = None          # why an unreadable file could not be read
    seconds: float = 0.0
    thumbnail: bytes | None = field(default=None, repr=False)  # JPEG
    sweep: Sweep | None = None

    @property
    def detected(self) -> bool:
        return self.status == "detected"


STATUSES = ("detected", "not detected", "unreadable")


def count_statuses(verdicts: list[Verdict]) -> dict[str, int]:
    """How many verdicts have each status (all of :data:`STATUSES`, zeros included)."""
    return {s: sum(v.status == s for v in verdicts) for s in STATUSES}


def _thumbnail(image: Image.Image) -> bytes:
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def verify_file(path: Path, watermarkers: list, key: str | None = None, with_sweep: bool = True,
                threshold: float = DEFAULT_THRESHOLD) -> Verdict:
    """Read one file with every model (:func:`~mbrs_engine.watermarker.decode_with_any`) and, when a watermark
    is found, sweep it with the model that read it."""
    from .watermarker import decode_with_any

    start = time.perf_counter()
    path = Path(path)
    try:
        image = open_image(path)
    except (ImageLoadError, OSError, ValueError) as exc:
        return Verdict(path, "unreadable", error=str(exc), seconds=time.perf_counter() - start)
    result = decode_with_any(image, watermarkers, key=key, threshold=threshold)
    verdict = Verdict(path, "detected" if result.detected else "not detected",
                      message=result.message if result.detected else None, p_value=float(result.p_value),
                      model=result.model, frame=result.frame if result.detected else None,
                      bit_errors_corrected=result.bit_errors_corrected if result.detected else None,
                      size=image.size, thumbnail=_thumbnail(image))
    if result.detected and with_sweep:
        wm = next(w for w in watermarkers if w.name == result.model)
        verdict.sweep = sweep(wm, image.convert("RGB"), result.message, key)
    verdict.seconds = time.perf_counter() - start
    return verdict


def verify_files(paths: list[Path], watermarkers: list, key: str | None = None, with_sweep: bool = True,
                 progress: Progress | None = None) -> list[Verdict]:
    """:func:`verify_file` for each path, in order; ``progress(i, n, name)`` before each (it may raise to cancel)."""
    if not watermarkers:
        raise ValueError("no model to verify with")
    verdicts = []
    for i, path in enumerate(paths):
        if progress:
            progress(i, len(paths), f"Verifying {Path(path).name} ({i + 1} of {len(paths)})")
        verdicts.append(verify_file(path, watermarkers, key, with_sweep))
    if progress:
        progress(len(paths), len(paths), "Verified")
    return verdicts


# ---------------------------------------------------------------- CSV

CSV_FIELDS = ("file", "status", "message", "p_value", "model", "found_as", "bit_errors_corrected", "width",
              "height", "lowest_jpeg_quality_read", "smallest_crop_read", "error", "seconds")


def csv_rows(verdicts: list[Verdict]) -> list[dict]:
    rows = []
    for v in verdicts:
        rows.append({"file": str(v.path), "status": v.status, "message": v.message or "",
                     "p_value": "" if v.p_value is None else f"{v.p_value:.3g}", "model": v.model or "",
                     "found_as": v.frame or "",
                     "bit_errors_corrected": "" if v.bit_errors_corrected is None else v.bit_errors_corrected,
                     "width": v.size[0] if v.size else "", "height": v.size[1] if v.size else "",
                     "lowest_jpeg_quality_read": "" if v.sweep is None or v.sweep.lowest_quality() is None
                     else v.sweep.lowest_quality(),
                     "smallest_crop_read": "" if v.sweep is None or v.sweep.smallest_crop() is None
                     else v.sweep.smallest_crop(),
                     "error": v.error or "", "seconds": round(v.seconds, 3)})
    return rows


def write_csv(verdicts: list[Verdict], path: Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(verdicts))
    atomic_write(Path(path), lambda fh: fh.write(buf.getvalue().encode("utf-8")))
    return Path(path)


# ---------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1d1d1f;background:#fff}
h1{font-size:1.5em;margin:0 0 .2em}.muted{color:#666}table{border-collapse:collapse;width:100%;margin-top:1em}
th,td{border-bottom:1px solid #ddd;padding:.5em;text-align:left;vertical-align:top}th{background:#f4f4f6}
td.thumb img{max-width:160px;max-height:160px;display:block}.yes{color:#1a7f37;font-weight:600}
.no{color:#666}.bad{color:#b3261e;font-weight:600}code{font-size:.95em}svg{display:block;margin:.2em 0}
.summary span{display:inline-block;margin-right:1.5em}
"""


def _plot_svg(xs: list[float], ys: list[float], oks: list[bool], x_label: str, width: int = 220,
              height: int = 90) -> str:
    """A small line chart of BER (%) against ``xs``, filled dots where the message read back."""
    left, right, top, bottom = 30, 8, 6, 22
    x0, x1 = min(xs), max(xs)
    y_max = max(5.0, math.ceil(max(100 * y for y in ys) / 5) * 5)

    def px(x):
        return left + (x - x0) / max(x1 - x0, 1e-9) * (width - left - right)

    def py(y):
        return top + (1 - 100 * y / y_max) * (height - top - bottom)

    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    dots = "".join(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{"#1a7f37" if ok else "#fff"}" '
                   f'stroke="{"#1a7f37" if ok else "#b3261e"}"/>' for x, y, ok in zip(xs, ys, oks))
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="bit error rate against {html.escape(x_label)}">'
            f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#999"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#999"/>'
            f'<text x="2" y="{top + 8}" font-size="9" fill="#666">{y_max:g}%</text>'
            f'<text x="2" y="{height - bottom}" font-size="9" fill="#666">0</text>'
            f'<text x="{left}" y="{height - 6}" font-size="9" fill="#666">{html.escape(x_label)} '
            f'{xs[0]:g}…{xs[-1]:g}</text>'
            f'<polyline points="{points}" fill="none" stroke="#3465a4" stroke-width="1.5"/>{dots}</svg>')


def _sweep_cell(s: Sweep | None) -> str:
    if s is None:
        return '<span class="muted">–</span>'
    return (_plot_svg(s.qualities, s.jpeg_ber, s.jpeg_recovered, "JPEG quality")
            + _plot_svg([100 * f for f in s.fractions], s.crop_ber, s.crop_recovered, "crop, % of area")
            + f'<div class="muted">{html.escape(s.summary())}</div>')


def _row_html(v: Verdict) -> str:
    esc = html.escape
    thumb = (f'<img alt="" src="data:image/jpeg;base64,{base64.b64encode(v.thumbnail).decode()}">'
             if v.thumbnail else "")
    if v.status == "detected":
        verdict = '<span class="yes">✓ watermark found</span>'
        details = (f"<div>Message: <b>{esc(v.message or '')}</b></div><div>p = {v.p_value:.3g} · model "
                   f"<code>{esc(v.model or '')}</code> · found as {esc(v.frame or '')} · "
                   f"{v.bit_errors_corrected} bit error(s) corrected</div>")
    elif v.status == "not detected":
        verdict = '<span class="no">✗ no watermark found</span>'
        details = f'<div class="muted">smallest p = {v.p_value:.3g} (a watermark needs p &lt; threshold)</div>'
    else:
        verdict = '<span class="bad">unreadable</span>'
        details = f'<div class="muted">{esc(v.error or "")}</div>'
    size = f"{v.size[0]}×{v.size[1]}" if v.size else ""
    return (f'<tr><td class="thumb">{thumb}</td><td><div><code>{esc(v.path.name)}</code></div>'
            f'<div class="muted">{esc(size)}</div></td><td>{verdict}{details}</td><td>{_sweep_cell(v.sweep)}</td></tr>')


def report_html(verdicts: list[Verdict], models: list[str], title: str = "Watermark verification report",
                key_used: bool = False, threshold: float = DEFAULT_THRESHOLD) -> str:
    """A self-contained HTML page: what was checked, how, and one row per file."""
    counts = count_statuses(verdicts)
    esc = html.escape
    rows = "".join(_row_html(v) for v in verdicts)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>'
            f'<div class="muted">Generated {esc(time.strftime("%Y-%m-%d %H:%M:%S %Z"))} by MBRS Studio '
            f'{esc(__version__)} · models tried: {esc(", ".join(models))} · '
            f'{"with a secret key" if key_used else "without a key"}</div>'
            f'<p class="summary"><span><b>{len(verdicts)}</b> file(s)</span><span class="yes">{counts["detected"]} '
            f'with a watermark</span><span>{counts["not detected"]} without</span>'
            f'<span class="bad">{counts["unreadable"]} unreadable</span></p>'
            f'<p class="muted">A watermark is reported when its p-value, the probability that an unmarked image '
            f'would pass the test, is below {threshold:g}; the p-value counts every model and every crop '
            f'hypothesis tried. The plots show the bit error rate of the marked file after JPEG re-encoding and '
            f'central crops; filled dots: the message still reads back.</p>'
            f'<table><thead><tr><th></th><th>File</th><th>Result</th><th>Robustness</th></tr></thead>'
            f'<tbody>{rows}</tbody></table></body></html>')


def write_html(verdicts: list[Verdict], path: Path, models: list[str], key_used: bool = False) -> Path:
    text = report_html(verdicts, models, key_used=key_used)
    atomic_write(Path(path), lambda fh: fh.write(text.encode("utf-8")))
    return Path(path)
