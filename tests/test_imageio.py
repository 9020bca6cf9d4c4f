"""Image I/O: modes, EXIF orientation and metadata, atomic saves, and every bad input with its clear error."""
from __future__ import annotations

import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, IptcImagePlugin, PngImagePlugin, TiffImagePlugin, TiffTags

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


XMP = ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:rights>© Jane Doe 2026</dc:rights></rdf:Description>'
       '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode("utf-8")
#: IPTC-IIM: 2:80 by-line "Jane Doe", 2:116 copyright notice "(c) Jane Doe 2026"
IPTC = b"\x1c\x02\x50\x00\x08Jane Doe" + b"\x1c\x02\x74\x00\x11(c) Jane Doe 2026"
DPI = (300, 300)


def with_app13(jpeg: bytes, iim: bytes) -> bytes:
    """A JPEG with a Photoshop APP13 segment (resource 0x0404 = IPTC) right after SOI, built by hand."""
    body = b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00" + struct.pack(">L", len(iim)) + iim + b"\x00" * (len(iim) % 2)
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def photographers_input(tmp_path, suffix: str):
    """A photo in this format with every metadata block the format holds (written by Pillow or by hand)."""
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    exif[0x8298] = "Jane Doe"  # EXIF copyright
    img, path = gradient(), tmp_path / f"in{suffix}"
    common = {"exif": exif.tobytes(), "icc_profile": srgb_icc()}
    if suffix == ".jpg":
        buf = io.BytesIO()
        img.save(buf, "JPEG", xmp=XMP, dpi=DPI, quality=95, **common)
        path.write_bytes(with_app13(buf.getvalue(), IPTC))
    elif suffix == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode("utf-8"))
        info.add_text("Raw profile type iptc", f"\niptc\n{len(IPTC):8d}\n{IPTC.hex()}\n", zip=True)
        info.add_text("Copyright", "Jane Doe")
        img.save(path, pnginfo=info, dpi=DPI, **common)
    elif suffix == ".tif":
        tags = TiffImagePlugin.ImageFileDirectory_v2()  # a TIFF's EXIF tags live in its own directory
        tags[0x010F], tags[0x8298] = "Camera", "Jane Doe"
        tags[700], tags.tagtype[700] = XMP, TiffTags.BYTE
        tags[33723], tags.tagtype[33723] = IPTC, TiffTags.UNDEFINED
        img.save(path, tiffinfo=tags, dpi=DPI, icc_profile=srgb_icc())
    else:
        img.save(path, xmp=XMP, lossless=True, **common)
    return path


#: What each output holds: EXIF and ICC everywhere; XMP everywhere; IPTC and dpi where the format has room.
HOLDS = {".jpg": {"iptc", "dpi"}, ".png": {"iptc", "dpi", "text"}, ".tif": {"iptc", "dpi"}, ".webp": set()}


def blocks_of(path) -> dict:
    """The metadata of a saved file, read with Pillow alone (not with the engine's reader)."""
    with Image.open(path) as img:
        img.load()
        tags = getattr(img, "tag_v2", {})
        xmp = img.info.get("xmp") or tags.get(700)
        iptc = None
        if img.format == "JPEG":
            info = IptcImagePlugin.getiptcinfo(img) or {}
            iptc = (info.get((2, 80)), info.get((2, 116)))
        elif img.format == "TIFF" and 33723 in tags:
            iptc = bytes(tags[33723])
        elif img.format == "PNG" and "Raw profile type iptc" in img.text:
            iptc = bytes.fromhex("".join(img.text["Raw profile type iptc"].split("\n")[3:]))
        return {"exif": img.getexif().get(0x8298), "icc": img.info.get("icc_profile") == srgb_icc(),
                "xmp": xmp.encode() if isinstance(xmp, str) else bytes(xmp) if xmp else None, "iptc": iptc,
                "dpi": tuple(round(float(v)) for v in img.info["dpi"]) if "dpi" in img.info else None,
                "text": getattr(img, "text", {}).get("Copyright")}


@pytest.mark.parametrize("source", [".jpg", ".png", ".tif", ".webp"])
@pytest.mark.parametrize("target", [".jpg", ".png", ".tif", ".webp"])
def test_every_metadata_block_survives_where_the_output_format_can_hold_it(tmp_path, source, target):
    loaded = io_.load_image(photographers_input(tmp_path, source))
    meta = loaded.metadata
    exif = Image.Exif()
    exif.load(meta.exif)
    assert meta.xmp == XMP and meta.icc_profile == srgb_icc() and exif[0x8298] == "Jane Doe"
    assert meta.iptc == (IPTC if source != ".webp" else None)
    assert meta.dpi == (DPI if source != ".webp" else None)
    dropped = {"iptc", "dpi", "text"} - HOLDS[target] if source != ".webp" else set()
    dropped &= {"iptc", "dpi"} | ({"text"} if source == ".png" else set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = io_.save_like(loaded.image, tmp_path / f"out{target}", loaded)
    noted = " ".join(str(w.message) for w in caught if issubclass(w.category, io_.MetadataWarning))
    back = blocks_of(out)
    assert back["exif"] == "Jane Doe" and back["icc"] and back["xmp"] == XMP
    if source != ".webp":
        if "iptc" in HOLDS[target]:
            assert back["iptc"] == ((b"Jane Doe", b"(c) Jane Doe 2026") if target == ".jpg" else IPTC)
        if "dpi" in HOLDS[target]:
            assert back["dpi"] == DPI
    if source == ".png" and target == ".png":
        assert back["text"] == "Jane Doe"
    for block, word in (("iptc", "IPTC"), ("dpi", "dpi"), ("text", "PNG text")):
        assert (word in noted) == (block in dropped), (block, noted)
    assert io_.load_image(out).metadata.xmp == XMP  # and the engine reads its own output back


def test_cmyk_profile_is_not_carried_to_rgb_output(tmp_path):
    img = gradient().convert("CMYK")
    fake_cmyk_icc = bytearray(srgb_icc())
    fake_cmyk_icc[16:20] = b"CMYK"
    img.save(tmp_path / "cmyk.jpg", icc_profile=bytes(fake_cmyk_icc))
    loaded = io_.load_image(tmp_path / "cmyk.jpg")
    assert loaded.image.mode == "RGB" and loaded.metadata.icc_profile is None


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


@pytest.mark.parametrize("width, height", [(10_000, 10_000), (16_000, 11_000)])  # 100 MP and 176 MP
def test_real_photos_up_to_the_documented_limit_are_not_taken_for_bombs(tmp_path, width, height):
    """Above Pillow's warning level (89.5 MP) and under the documented 178.9 MP: read (here the tiny data runs
    out, so the error is "truncated", never "bomb")."""
    assert width * height < io_.MAX_PIXELS == 178_956_970
    (tmp_path / "big.png").write_bytes(_png_declaring(width, height))
    with pytest.raises(ImageLoadError, match="truncated or corrupt") as error:
        io_.load_image(tmp_path / "big.png")
    assert "bomb" not in str(error.value)


def test_the_pixel_limit_is_a_setting(tmp_path, monkeypatch):
    (tmp_path / "big.png").write_bytes(_png_declaring(20_000, 20_000))  # 400 MP: over the default limit
    monkeypatch.setenv("MBRS_MAX_PIXELS", str(500_000_000))
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        io_.load_image(tmp_path / "big.png")
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's own setting is left as it was
    monkeypatch.setenv("MBRS_MAX_PIXELS", "1000")
    gradient(40, 30).save(tmp_path / "ok.png")
    with pytest.raises(ImageLoadError, match="1,200 pixels.*MBRS_MAX_PIXELS"):
        io_.load_image(tmp_path / "ok.png")
    monkeypatch.setenv("MBRS_MAX_PIXELS", "lots")
    with pytest.raises(ImageLoadError, match="MBRS_MAX_PIXELS must be"):
        io_.load_image(tmp_path / "ok.png")


@pytest.mark.parametrize("make, warned", [
    (lambda: Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)), "more than 8 bits"),
    (lambda: gradient().convert("L"), "greyscale"),
    (lambda: gradient().convert("LA"), "greyscale"),
    (lambda: gradient(), None),
    (lambda: gradient().convert("P"), None),
])
def test_deep_and_grey_inputs_say_they_become_8_bit_rgb(tmp_path, make, warned):
    make().save(tmp_path / "in.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = io_.load_image(tmp_path / "in.png")
    messages = [str(w.message) for w in caught if issubclass(w.category, io_.ModeWarning)]
    assert loaded.image.mode in ("RGB", "RGBA")
    assert (messages == []) if warned is None else (len(messages) == 1 and warned in messages[0])


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
