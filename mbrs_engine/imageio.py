"""Reading and writing the images users watermark: every common mode, EXIF orientation, metadata,
safe atomic writes, and one-line errors.

* :func:`load_image` opens a file, applies its EXIF orientation, takes the
  first frame of an animation (with a warning), refuses images above
  :data:`MAX_PIXELS` (possible decompression bombs), and returns an 8-bit
  ``RGB`` or ``RGBA`` image with its metadata (EXIF with orientation reset to 1,
  an RGB ICC profile, XMP, IPTC, dpi, PNG text: :mod:`mbrs_engine.metadata`)
  to carry over to the output.  A 16-bit or grey input is converted with a
  :class:`ModeWarning`.
* :func:`normalize_mode` maps any PIL mode to 8-bit RGB or RGBA:
  ``L``/``P``/``CMYK``/``1``/``YCbCr`` -> RGB, ``LA``/``PA``/``RGBa``/``P`` with
  transparency -> RGBA, 16-bit (``I;16*``, ``I``) -> 8 bit as ``round(v / 257)``
  (so 65535 -> 255), 32-bit float ``F`` -> clipped to 0..255.  The watermark
  lives in colour, so a grey input gives a colour (RGB) output.
* :func:`split_alpha` / :func:`join_alpha`: the watermark goes into RGB, the
  alpha channel is re-attached untouched.
* :func:`save_image` writes PNG, JPEG (``quality``), WebP (``quality``; 100 =
  lossless) or TIFF by extension, with every metadata block the format can
  hold, through a temporary file in the same folder and ``os.replace`` (a crash
  never leaves a half-written image), and refuses to overwrite its input or
  any existing file unless asked.

Errors are :class:`ImageLoadError` / :class:`OutputPathError` (``ValueError``)
and :class:`ImageSaveError` (``OSError``), each with a one-line message.
"""
from __future__ import annotations

import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .metadata import Metadata, MetadataWarning, encode, read_metadata  # noqa: F401

#: Refuse images that declare more pixels than this (Pillow's own decompression-bomb error level, 178.9 MP;
#: ``$MBRS_MAX_PIXELS`` or the ``max_pixels`` argument sets another).
MAX_PIXELS = 2 * 89_478_485
#: Output formats by file extension.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
#: Extensions of files taken as images in folders.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")
DEFAULT_QUALITY = 95
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageLoadError(ValueError):
    """An input that cannot be read as an image."""


class OutputPathError(ValueError):
    """An output path that is refused before anything is written."""


class ImageWarning(UserWarning):
    """Something the user should know about an input (an animation reduced to its first frame)."""


class ModeWarning(ImageWarning):
    """An input converted on the way in (16-bit to 8-bit, grey to RGB): the output differs in kind."""


class ImageSaveError(OSError):
    """Writing the output failed (permissions, disk full, ...); nothing was left behind."""


@dataclass
class LoadedImage:
    """An input image ready to watermark, with what to carry over to the output."""

    image: Image.Image  # 8-bit RGB or RGBA, EXIF orientation applied
    path: Path
    format: str | None
    source_mode: str
    metadata: Metadata  # what the output keeps: EXIF (orientation 1), RGB ICC, XMP, IPTC, dpi, PNG text
    frames: int = 1


# ---------------------------------------------------------------- modes


def _sixteen_to_8bit(img: Image.Image) -> Image.Image:
    values = np.asarray(img).astype(np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")


def _float_to_8bit(img: Image.Image) -> Image.Image:
    values = np.nan_to_num(np.asarray(img, dtype=np.float64))
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def _palette_has_alpha(img: Image.Image) -> bool:
    return "transparency" in img.info or (img.palette is not None and img.palette.mode == "RGBA")


def normalize_mode(img: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB or RGBA (see the module docstring for each mode)."""
    mode = img.mode
    if mode in ("RGB", "RGBA"):
        return img
    if mode in _SIXTEEN_BIT_MODES:
        return _sixteen_to_8bit(img).convert("RGB")
    if mode == "F":
        return _float_to_8bit(img).convert("RGB")
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and _palette_has_alpha(img)):
        return img.convert("RGBA")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageLoadError(f"unsupported image mode {mode!r}: {exc}") from None


def split_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """(8-bit RGB image, alpha channel or None) of any image."""
    img = normalize_mode(img)
    if img.mode == "RGBA":
        return img.convert("RGB"), img.getchannel("A")
    return img, None


def join_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """Re-attach an untouched alpha channel (when there was one)."""
    if alpha is None:
        return rgb
    out = rgb.copy()
    out.putalpha(alpha)
    return out


# ---------------------------------------------------------------- loading


def _check_input_path(path: Path) -> None:
    if not path.exists():
        raise ImageLoadError(f"cannot read '{path}': no such file")
    if path.is_dir():
        raise ImageLoadError(f"cannot read '{path}': it is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"cannot read '{path}': the file is empty")


_PILLOW_LIMIT = threading.Lock()


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open (header only) and refuse images that declare more than ``max_pixels`` pixels.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (89.5 MP) and refuses above
    twice that; the limit here is ``max_pixels`` alone (Pillow's refusal is
    lifted for the call when ``max_pixels`` is higher).
    """
    with warnings.catch_warnings(), _PILLOW_LIMIT:  # read and restore under the lock: threads open files at once
        pillow_limit = Image.MAX_IMAGE_PIXELS
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if pillow_limit is not None and max_pixels >= 2 * pillow_limit:
            Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            img = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(f"cannot read '{path}': refused as a possible decompression bomb ({exc})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise ImageLoadError(f"cannot read '{path}': it declares {width}x{height} = {width * height:,} pixels, "
                             f"more than the limit of {max_pixels:,} (a possible decompression bomb; "
                             f"MBRS_MAX_PIXELS sets another limit)")
    if width < 1 or height < 1:
        img.close()
        raise ImageLoadError(f"cannot read '{path}': it declares an empty size {width}x{height}")
    return img


def _first_frame(img: Image.Image, path: Path) -> int:
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        warnings.warn(f"'{path}' is animated ({frames} frames): only the first frame is used",
                      ImageWarning, stacklevel=3)
        img.seek(0)
    return frames


def max_pixels_setting() -> int:
    """:data:`MAX_PIXELS`, or ``$MBRS_MAX_PIXELS`` when set (a positive whole number)."""
    text = os.environ.get("MBRS_MAX_PIXELS")
    if not text:
        return MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ImageLoadError(f"MBRS_MAX_PIXELS must be a positive whole number of pixels, got {text!r}")
    return value


def _mode_warning(mode: str) -> None:
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        warnings.warn(f"the input has more than 8 bits per channel ({mode}): the watermarked output has 8",
                      ModeWarning, stacklevel=3)
    elif mode in ("L", "LA", "La", "1"):
        warnings.warn("the input is greyscale: the watermark lives in colour, so the output is RGB",
                      ModeWarning, stacklevel=3)


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> LoadedImage:
    """Read an image file for watermarking; raises :class:`ImageLoadError` with a one-line reason.

    ``max_pixels``: the most pixels accepted (default :func:`max_pixels_setting`).
    """
    path = Path(path)
    _check_input_path(path)
    max_pixels = max_pixels_setting() if max_pixels is None else max_pixels
    try:
        with _open_checked(path, max_pixels) as img:
            frames = _first_frame(img, path)
            img.load()
            upright = ImageOps.exif_transpose(img)
            _mode_warning(img.mode)
            return LoadedImage(normalize_mode(upright), path, img.format, img.mode, read_metadata(img),
                               frames)
    except UnidentifiedImageError:
        raise ImageLoadError(f"cannot read '{path}': not an image file, or not in a format MBRS Studio reads "
                             f"(PNG, JPEG, WebP, TIFF, BMP, GIF)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as exc:
        if isinstance(exc, ImageLoadError):
            raise
        raise ImageLoadError(f"cannot read '{path}': the file is truncated or corrupt ({exc})") from None


def open_image(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """Just the image of :func:`load_image` (8-bit RGB or RGBA, upright)."""
    return load_image(path, max_pixels).image


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside a folder (by extension), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageLoadError(f"'{folder}' is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


# ---------------------------------------------------------------- saving


def output_format(path: str | os.PathLike) -> str:
    """The PIL format name for an output path, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise OutputPathError(f"cannot write '{path}': unsupported output format '{suffix or '(none)'}' "
                              f"(use .png, .jpg, .webp or .tif)")
    return FORMATS[suffix]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: str | os.PathLike, source: str | os.PathLike | None = None,
                      overwrite: bool = False, replace: bool | None = None) -> Path:
    """Validate an output path before any work: format, folder, not the input unless ``overwrite``, and not an
    existing file unless ``replace`` (default: as ``overwrite``; the app passes True once the user agreed)."""
    path = Path(path)
    output_format(path)
    replace = overwrite if replace is None else replace
    if source is not None and not overwrite and (_same_file(path, Path(source))
                                                 or path.resolve() == Path(source).resolve()):
        raise OutputPathError(f"refusing to overwrite the input '{source}' (pass --overwrite to allow it)")
    if path.is_dir():
        raise OutputPathError(f"cannot write '{path}': it is a folder")
    if path.exists() and not replace:
        raise OutputPathError(f"refusing to overwrite '{path}', which already exists (pass --overwrite to allow it)")
    parent = path.parent
    if not parent.is_dir():
        raise OutputPathError(f"cannot write '{path}': the folder '{parent}' does not exist")
    return path


def _save_options(fmt: str, img: Image.Image, quality: int) -> dict:
    if fmt == "JPEG" and img.mode == "RGBA":
        raise OutputPathError("JPEG cannot store transparency: save as .png, .webp or .tif")
    if not 1 <= quality <= 100:
        raise OutputPathError(f"quality must be between 1 and 100, got {quality}")
    if fmt == "JPEG":
        return {"quality": quality}
    if fmt == "WEBP":
        return {"quality": quality, "lossless": quality == 100}
    if fmt == "TIFF":
        return {"compression": "tiff_deflate"}
    return {}


def _file_mode(path: Path) -> int:
    """Permission bits for the output: the old file's, or what a plain create would give."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ImageSaveError(f"cannot write '{path}': {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, ImageSaveError):
            raise ImageSaveError(f"cannot write '{path}': {exc.strerror or exc}") from None
        raise


def save_image(img: Image.Image, path: str | os.PathLike, *, metadata: Metadata | None = None,
               quality: int = DEFAULT_QUALITY, source: str | os.PathLike | None = None, overwrite: bool = False,
               replace: bool | None = None) -> Path:
    """Write ``img`` atomically in the format of ``path``'s extension, with every block of ``metadata`` the
    format holds (see :mod:`mbrs_engine.metadata`); ``overwrite`` / ``replace`` as in :func:`check_output_path`.
    Returns the path."""
    path = check_output_path(path, source, overwrite, replace)
    fmt = output_format(path)
    data = encode(img, fmt, _save_options(fmt, img, quality), metadata or Metadata())
    atomic_write(path, lambda fh: fh.write(data))
    return path


def save_like(img: Image.Image, path: str | os.PathLike, loaded: LoadedImage, *, quality: int = DEFAULT_QUALITY,
              overwrite: bool = False, replace: bool | None = None) -> Path:
    """Save ``img`` keeping the metadata of the input it was made from."""
    return save_image(img, path, metadata=loaded.metadata, quality=quality, source=loaded.path,
                      overwrite=overwrite, replace=replace)
