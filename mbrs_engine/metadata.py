"""Photographers' metadata: read every block an input carries, write each one the output format can hold.

:class:`Metadata` holds, as raw bytes where the format stores bytes:

* ``exif``: the EXIF block, orientation reset to 1 (the pixels were turned upright);
* ``icc_profile``: an RGB ICC profile (a grey or CMYK one no longer fits the RGB output);
* ``xmp``: the XMP packet (where photographers keep creator, copyright, licence);
* ``iptc``: the IPTC-IIM records (what Photoshop's resource 0x0404 and TIFF tag 33723 hold);
* ``dpi``: the resolution in pixels per inch;
* ``text``: PNG text chunks other than XMP and IPTC (``Author``, ``Copyright``, ...).

Where each block goes, by output format (``x``: kept; ``-``: the format has
no place for it, dropped with a :class:`MetadataWarning`)::

            EXIF  ICC  XMP  IPTC  dpi  PNG text
    JPEG     x     x    x    x     x     -      (IPTC in an APP13 Photoshop segment)
    PNG      x     x    x    x     x     x      (XMP in iTXt; IPTC as a "Raw profile type iptc" zTXt)
    TIFF     x     x    x    x     x     -      (XMP tag 700, IPTC tag 33723)
    WebP     x     x    x    -     -     -

WebP has no IPTC chunk and no resolution field (the EXIF block carries its own
resolution tags, and is kept).
"""
from __future__ import annotations

import binascii
import io
import re
import struct
import warnings
from dataclasses import dataclass, field

from PIL import Image, PngImagePlugin

_ORIENTATION = 0x0112
_IPTC_RESOURCE = 0x0404
_PHOTOSHOP = b"Photoshop 3.0\x00"
_PNG_XMP_KEY = "XML:com.adobe.xmp"
_PNG_IPTC_KEYS = ("Raw profile type iptc", "Raw profile type 8bim")
_TIFF_XMP, _TIFF_IPTC = 700, 33723
#: Tags of a TIFF's own directory that describe its pixels (size, strips, compression, ...) or that the other
#: fields hold: not part of the EXIF carried to another file.
_TIFF_OWN_TAGS = {254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325,
                  338, 339, 340, 341, _TIFF_XMP, _TIFF_IPTC, 34675}
_MAX_SEGMENT = 65533  # payload bytes of one JPEG marker segment


class MetadataWarning(UserWarning):
    """A metadata block the output format cannot hold (it is dropped)."""


@dataclass
class Metadata:
    """The metadata blocks of one image (see the module docstring)."""

    exif: bytes | None = None
    icc_profile: bytes | None = None
    xmp: bytes | None = None
    iptc: bytes | None = None
    dpi: tuple[float, float] | None = None
    text: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- reading


def read_metadata(img: Image.Image) -> Metadata:
    """Every block of ``img`` as opened (its pixels are taken to be turned upright by their EXIF orientation)."""
    return Metadata(exif=_exif_bytes(img, img.format == "TIFF"), icc_profile=_rgb_icc_profile(img), xmp=_xmp(img),
                    iptc=_iptc(img), dpi=_dpi(img), text=_png_text(img))


def _exif_bytes(img: Image.Image, tiff: bool) -> bytes | None:
    """The EXIF block with orientation 1 ("upright"), since the pixels were already turned upright; of a TIFF,
    without the tags that describe its own pixel layout or that other fields here carry (XMP, IPTC, ICC)."""
    exif = img.getexif()
    if tiff:
        for tag in [t for t in exif if t in _TIFF_OWN_TAGS]:
            del exif[tag]
    if not len(exif):
        return None
    exif[_ORIENTATION] = 1
    return exif.tobytes()


def _rgb_icc_profile(img: Image.Image) -> bytes | None:
    """The embedded ICC profile if it describes RGB data (header bytes 16..20 are the colour space)."""
    icc = img.info.get("icc_profile")
    return icc if icc and icc[16:20] == b"RGB " else None


def _as_bytes(value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, tuple) and all(isinstance(v, int) and 0 <= v < 256 for v in value):
        return bytes(value)
    return None


def _xmp(img: Image.Image) -> bytes | None:
    value = img.info.get("xmp") or img.info.get(_PNG_XMP_KEY)
    if value is None and hasattr(img, "tag_v2"):
        value = img.tag_v2.get(_TIFF_XMP)
    return _as_bytes(value) or None


def _iptc(img: Image.Image) -> bytes | None:
    photoshop = img.info.get("photoshop")
    if isinstance(photoshop, dict) and photoshop.get(_IPTC_RESOURCE):
        return bytes(photoshop[_IPTC_RESOURCE])
    if hasattr(img, "tag_v2") and _TIFF_IPTC in img.tag_v2:
        value = img.tag_v2[_TIFF_IPTC]
        if isinstance(value, tuple) and value and isinstance(value[0], int) and max(value) > 255:
            order = ">" if getattr(img.tag_v2, "_endian", "<") == ">" else "<"
            return struct.pack(f"{order}{len(value)}L", *value)  # IPTC stored as LONGs: the same bytes
        return _as_bytes(value) or None
    text = getattr(img, "text", None) or {}
    raw = text.get(_PNG_IPTC_KEYS[0])
    return _unhex_profile(raw) if raw else None


def _dpi(img: Image.Image) -> tuple[float, float] | None:
    dpi = img.info.get("dpi")
    if not (isinstance(dpi, tuple) and len(dpi) == 2):
        return None
    try:
        x, y = (round(float(v), 2) for v in dpi)  # PNG stores dots per metre
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def _png_text(img: Image.Image) -> dict[str, str]:
    if img.format != "PNG":
        return {}
    text = getattr(img, "text", None) or {}
    return {k: str(v) for k, v in text.items() if k != _PNG_XMP_KEY and k not in _PNG_IPTC_KEYS}


def _unhex_profile(raw: str) -> bytes | None:
    """The bytes of an ImageMagick "Raw profile" text: name, length, then hex digits."""
    parts = str(raw).split("\n", 3)
    if len(parts) < 4:
        return None
    try:
        length = int(parts[2])
        data = binascii.unhexlify(re.sub(r"\s+", "", parts[3]))
    except (ValueError, binascii.Error):
        return None
    return data[:length] if len(data) >= length else None


def _hex_profile(name: str, data: bytes) -> str:
    digits = binascii.hexlify(data).decode("ascii")
    lines = "\n".join(digits[i:i + 72] for i in range(0, len(digits), 72))
    return f"\n{name}\n{len(data):8d}\n{lines}\n"


# ---------------------------------------------------------------- writing


def _dropped(what: list[str], fmt: str) -> None:
    if what:
        warnings.warn(f"{fmt} cannot hold the input's {' and '.join(what)}: not kept in the output "
                      f"(PNG keeps every block)", MetadataWarning, stacklevel=4)


def save_options(fmt: str, meta: Metadata) -> dict:
    """Pillow save options for the blocks Pillow writes itself (the rest: :func:`finish`)."""
    options: dict = {}
    if meta.exif:
        options["exif"] = meta.exif
    if meta.icc_profile:
        options["icc_profile"] = meta.icc_profile
    if meta.dpi and fmt in ("JPEG", "PNG", "TIFF"):
        options["dpi"] = meta.dpi
    if fmt == "JPEG":
        if meta.xmp:
            options["xmp"] = meta.xmp
        _dropped(["PNG text chunks"] if meta.text else [], fmt)
    elif fmt == "WEBP":
        if meta.xmp:
            options["xmp"] = meta.xmp
        _dropped([name for name, present in (("IPTC", meta.iptc), ("resolution (dpi)", meta.dpi),
                                             ("PNG text chunks", meta.text)) if present], fmt)
    elif fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        for key, value in meta.text.items():
            _add_png_text(info, key, value)
        if meta.xmp:
            info.add_itxt(_PNG_XMP_KEY, meta.xmp.decode("utf-8", "replace"))
        if meta.iptc:
            info.add_text(_PNG_IPTC_KEYS[0], _hex_profile("iptc", meta.iptc), zip=True)
        options["pnginfo"] = info
    elif fmt == "TIFF":  # EXIF, XMP and IPTC are all tags of the one directory: Pillow takes them together
        tags = Image.Exif()
        if meta.exif:
            tags.load(meta.exif)
        for tag, value in ((_TIFF_XMP, meta.xmp), (_TIFF_IPTC, meta.iptc)):
            if value:
                tags[tag] = value
        if len(tags):
            options["exif"] = tags
        _dropped(["PNG text chunks"] if meta.text else [], fmt)
    return options


def _add_png_text(info: PngImagePlugin.PngInfo, key: str, value: str) -> None:
    try:
        value.encode("latin-1")
        key.encode("latin-1")
    except UnicodeEncodeError:
        info.add_itxt(key, value)
    else:
        info.add_text(key, value)


def finish(fmt: str, data: bytes, meta: Metadata) -> bytes:
    """The encoded file with the blocks Pillow cannot write itself: IPTC in a JPEG (an APP13 segment)."""
    if fmt != "JPEG" or not meta.iptc:
        return data
    payload = _PHOTOSHOP + _photoshop_resource(_IPTC_RESOURCE, meta.iptc)
    if len(payload) > _MAX_SEGMENT:
        _dropped(["IPTC (larger than one JPEG segment)"], fmt)
        return data
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    at = _after_app_segments(data)
    return data[:at] + segment + data[at:]


def _photoshop_resource(resource: int, body: bytes) -> bytes:
    """One 8BIM image resource: signature, id, an empty (even-padded) name, size, data padded to even."""
    return b"8BIM" + struct.pack(">H", resource) + b"\x00\x00" + struct.pack(">L", len(body)) + body + \
        (b"\x00" if len(body) % 2 else b"")


def _after_app_segments(data: bytes) -> int:
    """Offset just past the SOI marker and the APPn segments that follow it in a JPEG file."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF and 0xE0 <= data[at + 1] <= 0xEF:
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return at


def encode(img: Image.Image, fmt: str, options: dict, meta: Metadata) -> bytes:
    """``img`` encoded in ``fmt`` with ``options`` and every block of ``meta`` the format holds."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options, **save_options(fmt, meta))
    return finish(fmt, buf.getvalue(), meta)
