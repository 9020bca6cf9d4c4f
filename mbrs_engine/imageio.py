"""Reading and writing the images users watermark: every common mode, EXIF orientation, metadata,
safe atomic writes, and one-line errors.

* :func:`load_image` opens a file, applies its EXIF orientation, takes the
  first frame of an animation (with a warning), refuses decompression bombs,
  and returns an 8-bit ``RGB`` or ``RGBA`` image with the EXIF (orientation
  reset to 1) and an RGB ICC profile to carry over to the output.
* :func:`normalize_mode` maps any PIL mode to 8-bit RGB or RGBA:
  ``L``/``P``/``CMYK``/``1``/``YCbCr`` -> RGB, ``LA``/``PA``/``RGBa``/``P`` with
  transparency -> RGBA, 16-bit (``I;16*``, ``I``) -> 8 bit as ``round(v / 257)``
  (so 65535 -> 255), 32-bit float ``F`` -> clipped to 0..255.  The watermark
  lives in colour, so a grey input gives a colour (RGB) output.
* :func:`split_alpha` / :func:`join_alpha`: the watermark goes into RGB, the
  alpha channel is re-attached untouched.
* :func:`save_image` writes PNG, JPEG (``quality``), WebP (``quality``; 100 =
  lossless) or TIFF by extension, through a temporary file in the same folder
  and ``os.replace`` (a crash never leaves a half-written image), and refuses
  to overwrite its own input unless asked.

Errors are :class:`ImageLoadError` / :class:`OutputPathError` (``ValueError``)
and :class:`ImageSaveError` (``OSError``), each with a one-line message.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Refuse images that declare more pixels than this (Pillow's own decompression-bomb error level).
MAX_PIXELS = 2 * 89_478_485
#: Output formats by file extension.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
#: Extensions of files taken as images in folders.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")
DEFAULT_QUALITY = 95
_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageLoadError(ValueError):
    """An input that cannot be read as an image."""


class OutputPathError(ValueError):
    """An output path that is refused before anything is written."""


class ImageWarning(UserWarning):
    """Something the user should know about an input (an animation reduced to its first frame)."""


class ImageSaveError(OSError):
    """Writing the output failed (permissions, disk full, ...); nothing was left behind."""


@dataclass
class LoadedImage:
    """An input image ready to watermark, with what to carry over to the output."""

    image: Image.Image  # 8-bit RGB or RGBA, EXIF orientation applied
    path: Path
    format: str | None
    source_mode: str
    exif: bytes | None  # EXIF with orientation reset to 1
    icc_profile: bytes | None  # only an RGB profile (a CMYK or grey one no longer fits the pixels)
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


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open (header only) and refuse images that declare too many pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageLoadError(f"cannot read '{path}': refused as a possible decompression bomb ({exc})") from None
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise ImageLoadError(f"cannot read '{path}': it declares {width}x{height} = {width * height:,} pixels, "
                             f"more than the limit of {max_pixels:,} (a possible decompression bomb)")
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


def _rgb_icc_profile(img: Image.Image) -> bytes | None:
    """The embedded ICC profile if it describes RGB data (header bytes 16..20 are the colour space)."""
    icc = img.info.get("icc_profile")
    return icc if icc and icc[16:20] == b"RGB " else None


def _exif_bytes(img: Image.Image) -> bytes | None:
    """The EXIF block with orientation 1 ("upright"), since the pixels were already turned upright."""
    exif = img.getexif()
    if not len(exif):
        return None
    exif[_ORIENTATION] = 1
    return exif.tobytes()


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read an image file for watermarking; raises :class:`ImageLoadError` with a one-line reason."""
    path = Path(path)
    _check_input_path(path)
    try:
        with _open_checked(path, max_pixels) as img:
            frames = _first_frame(img, path)
            img.load()
            upright = ImageOps.exif_transpose(img)
            return LoadedImage(normalize_mode(upright), path, img.format, img.mode, _exif_bytes(upright),
                               _rgb_icc_profile(img), frames)
    except UnidentifiedImageError:
        raise ImageLoadError(f"cannot read '{path}': not an image file, or a format Pillow cannot read") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as exc:
        if isinstance(exc, ImageLoadError):
            raise
        raise ImageLoadError(f"cannot read '{path}': the file is truncated or corrupt ({exc})") from None


def open_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
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
                      overwrite: bool = False) -> Path:
    """Validate an output path before any work: format, folder, and not the input unless ``overwrite``."""
    path = Path(path)
    output_format(path)
    if source is not None and not overwrite and (_same_file(path, Path(source))
                                                 or path.resolve() == Path(source).resolve()):
        raise OutputPathError(f"refusing to overwrite the input '{source}' (pass --overwrite to allow it)")
    if path.is_dir():
        raise OutputPathError(f"cannot write '{path}': it is a folder")
    parent = path.parent
    if not parent.is_dir():
        raise OutputPathError(f"cannot write '{path}': the folder '{parent}' does not exist")
    return path


def _save_options(fmt: str, img: Image.Image, quality: int, exif: bytes | None, icc: bytes | None) -> dict:
    if fmt == "JPEG" and img.mode == "RGBA":
        raise OutputPathError("JPEG cannot store transparency: save as .png, .webp or .tif")
    if not 1 <= quality <= 100:
        raise OutputPathError(f"quality must be between 1 and 100, got {quality}")
    options: dict = {}
    if exif:
        options["exif"] = exif
    if icc:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        options["quality"] = quality
    elif fmt == "WEBP":
        options.update(quality=quality, lossless=quality == 100)
    elif fmt == "TIFF":
        options["compression"] = "tiff_deflate"
    return options


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


def save_image(img: Image.Image, path: str | os.PathLike, *, exif: bytes | None = None,
               icc_profile: bytes | None = None, quality: int = DEFAULT_QUALITY,
               source: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Write ``img`` atomically in the format of ``path``'s extension; returns the path."""
    path = check_output_path(path, source, overwrite)
    fmt = output_format(path)
    options = _save_options(fmt, img, quality, exif, icc_profile)
    atomic_write(path, lambda fh: img.save(fh, format=fmt, **options))
    return path


def save_like(img: Image.Image, path: str | os.PathLike, loaded: LoadedImage, *, quality: int = DEFAULT_QUALITY,
              overwrite: bool = False) -> Path:
    """Save ``img`` keeping the EXIF and ICC profile of the input it was made from."""
    return save_image(img, path, exif=loaded.exif, icc_profile=loaded.icc_profile, quality=quality,
                      source=loaded.path, overwrite=overwrite)
