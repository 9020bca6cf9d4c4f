"""Image I/O: modes, EXIF orientation and metadata, atomic saves, and every bad input with its clear error."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from mbrs_engine import imageio as io_
from mbrs_engine.imageio import ImageLoadError, ImageSaveError, OutputPathError


def gradient(width=40, height=30, mode="RGB") -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None, None]
    rgb = np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                          np.broadcast_to((x + y) / 2, (height, width, 1))], axis=2)
    return Image.fromarray(rgb.astype(np.uint8), "RGB").convert(mode)


_SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # once: it holds a timestamp


def srgb_icc() -> bytes:
    return _SRGB_ICC


# ---------------------------------------------------------------- modes


@pytest.mark.parametrize("mode, expected", [("RGB", "RGB"), ("RGBA", "RGBA"), ("L", "RGB"), ("LA", "RGBA"),
                                            ("P", "RGB"), ("CMYK", "RGB"), ("1", "RGB"), ("YCbCr", "RGB"),
                                            ("I;16", "RGB"), ("I", "RGB"), ("F", "RGB"), ("RGBX", "RGB")])
def test_normalize_mode(mode, expected):
    img = gradient().convert(mode) if mode not in ("I;16", "I", "F") else gradient().convert("L").convert(mode)
    out = io_.normalize_mode(img)
    assert out.mode == expected and out.size == img.size


def test_palette_with_transparency_keeps_alpha():
    img = gradient().convert("P")
    img.info["transparency"] = 0
    assert io_.normalize_mode(img).mode == "RGBA"


def test_sixteen_bit_is_scaled_to_eight_bit(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    loaded = io_.load_image(tmp_path / "deep.png")
    assert loaded.source_mode.startswith("I")
    assert np.asarray(loaded.image)[0, :, 0].tolist() == [0, 1, 128, 255]


def test_split_and_join_alpha_keep_alpha_untouched():
    img = gradient(mode="RGBA")
    alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8))
    img.putalpha(alpha)
    rgb, a = io_.split_alpha(img)
    assert rgb.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(alpha))
    assert np.array_equal(np.asarray(io_.join_alpha(rgb, a)), np.asarray(img))
    assert io_.split_alpha(gradient())[1] is None


# ---------------------------------------------------------------- loading and metadata


def test_exif_orientation_is_applied_and_reset(tmp_path):
    img = gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "Test camera"
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    loaded = io_.load_image(tmp_path / "rotated.jpg")
    assert loaded.image.size == (30, 40)
    saved = io_.save_like(loaded.image, tmp_path / "out.png", loaded)
    with Image.open(saved) as back:
        assert back.getexif()[0x0112] == 1 and back.getexif()[0x010F] == "Test camera"
    assert io_.load_image(saved).image.size == (30, 40)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_exif_and_icc_survive_a_save(tmp_path, suffix):
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    gradient().save(tmp_path / "in.png", exif=exif.tobytes(), icc_profile=srgb_icc())
    loaded = io_.load_image(tmp_path / "in.png")
    assert loaded.icc_profile == srgb_icc()
    out = io_.save_like(loaded.image, tmp_path / f"out{suffix}", loaded)
    with Image.open(out) as back:
        assert back.info.get("icc_profile") == srgb_icc()
        assert back.getexif().get(0x010F) == "Camera"


def test_cmyk_profile_is_not_carried_to_rgb_output(tmp_path):
    img = gradient().convert("CMYK")
    fake_cmyk_icc = bytearray(srgb_icc())
    fake_cmyk_icc[16:20] = b"CMYK"
    img.save(tmp_path / "cmyk.jpg", icc_profile=bytes(fake_cmyk_icc))
    loaded = io_.load_image(tmp_path / "cmyk.jpg")
    assert loaded.image.mode == "RGB" and loaded.icc_profile is None


def test_animated_gif_gives_first_frame_and_a_warning(tmp_path):
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    with pytest.warns(io_.ImageWarning, match="3 frames"):
        loaded = io_.load_image(tmp_path / "anim.gif")
    assert loaded.frames == 3 and loaded.image.getpixel((0, 0))[0] > 200


@pytest.mark.parametrize("size", [(1, 1), (8, 8)])
def test_tiny_images_load(tmp_path, size):
    Image.new("RGB", size, (10, 20, 30)).save(tmp_path / "tiny.png")
    assert io_.load_image(tmp_path / "tiny.png").image.size == size


# ---------------------------------------------------------------- bad inputs


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        io_.load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="folder"):
        io_.load_image(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty"):
        io_.load_image(tmp_path / "empty.png")


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("these are my notes, not a picture\n")
    with pytest.raises(ImageLoadError, match="not an image file"):
        io_.load_image(tmp_path / "notes.png")


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_file(tmp_path, fmt, suffix):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    (tmp_path / f"cut{suffix}").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        io_.load_image(tmp_path / f"cut{suffix}")


def test_corrupt_file(tmp_path):
    buf = io.BytesIO()
    gradient().save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[60:80] = b"\xff" * 20  # inside the image data
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match="cannot read"):
        io_.load_image(tmp_path / "bad.png")


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [20_000, 100_000])
def test_decompression_bomb_is_refused(tmp_path, side):
    (tmp_path / "bomb.png").write_bytes(_png_declaring(side, side))
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        io_.load_image(tmp_path / "bomb.png")


def test_custom_pixel_limit(tmp_path):
    gradient(40, 30).save(tmp_path / "ok.png")
    with pytest.raises(ImageLoadError, match="1,200 pixels"):
        io_.load_image(tmp_path / "ok.png", max_pixels=1000)


def test_errors_are_value_or_os_errors():
    assert issubclass(ImageLoadError, ValueError) and issubclass(OutputPathError, ValueError)
    assert issubclass(ImageSaveError, OSError)


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"),
                                         (".tiff", "TIFF")])
def test_format_by_extension(tmp_path, suffix, fmt):
    io_.save_image(gradient(), tmp_path / f"a{suffix}")
    with Image.open(tmp_path / f"a{suffix}") as back:
        assert back.format == fmt


def test_lossless_formats_are_exact_and_quality_matters(tmp_path):
    img = gradient()
    for suffix in (".png", ".tif"):
        io_.save_image(img, tmp_path / f"x{suffix}")
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"x{suffix}").convert("RGB")), np.asarray(img))
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    io_.save_image(noisy, tmp_path / "low.jpg", quality=30)
    io_.save_image(noisy, tmp_path / "high.jpg", quality=95)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size


def test_unsupported_output_and_rgba_jpeg(tmp_path):
    with pytest.raises(OutputPathError, match="unsupported output format '.gif'"):
        io_.save_image(gradient(), tmp_path / "a.gif")
    with pytest.raises(OutputPathError, match="JPEG cannot store transparency"):
        io_.save_image(gradient(mode="RGBA"), tmp_path / "a.jpg")
    assert not list(tmp_path.iterdir())


def test_output_equal_to_input_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "photo.png"
    gradient().save(path)
    before = path.read_bytes()
    with pytest.raises(OutputPathError, match="refusing to overwrite the input"):
        io_.save_image(gradient(40, 30, "L").convert("RGB"), path, source=path)
    with pytest.raises(OutputPathError, match="refusing"):
        io_.save_image(gradient(), tmp_path / "." / "photo.png", source=path)
    assert path.read_bytes() == before
    io_.save_image(Image.new("RGB", (40, 30)), path, source=path, overwrite=True)
    assert path.read_bytes() != before


def test_unwritable_output_paths(tmp_path):
    with pytest.raises(OutputPathError, match="does not exist"):
        io_.save_image(gradient(), tmp_path / "missing" / "out.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="does not exist"):
        io_.save_image(gradient(), tmp_path / "file" / "out.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        io_.save_image(gradient(), tmp_path / "dir.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ImageSaveError, match="cannot write"):
            io_.save_image(gradient(), folder / "out.png")
    finally:
        folder.chmod(0o700)


def test_writes_are_atomic(tmp_path):
    target = tmp_path / "out.png"
    gradient().save(target)
    before = target.read_bytes()

    def crash(fh):
        fh.write(b"half an image")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        io_.atomic_write(target, crash)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]

    def disk_full(fh):
        raise OSError(28, "No space left on device")

    with pytest.raises(ImageSaveError, match="No space left"):
        io_.atomic_write(tmp_path / "new.png", disk_full)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_saved_file_gets_normal_permissions(tmp_path):
    io_.save_image(gradient(), tmp_path / "perm.png")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "perm.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_list_images(tmp_path):
    for name in ("b.png", "a.JPG", "c.txt", "d.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in io_.list_images(tmp_path)] == ["a.JPG", "b.png", "d.webp"]
