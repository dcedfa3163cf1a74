"""Tests of portraitfx.io.images: safe reading, mode conversion, EXIF, bombs, atomic saving."""

from __future__ import annotations

import functools
import io
import itertools
import struct
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from portraitfx.errors import (
    ConfigError,
    CorruptInputError,
    ImageTooLargeError,
    InputError,
    InputNotFoundError,
    OutputError,
    UnsupportedFormatError,
)
from portraitfx.io.images import (
    LoadedImage,
    encode_image,
    load_image,
    read_image,
    save_image,
    sniff,
)

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "portraitfx" / "assets" / "samples"
FACE_PHOTOS = ["obama", "obama2", "obama3", "biden", "obama_partial_face", "obama_partial_face2"]


# --------------------------------------------------------------------------- helpers


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png(width: int, height: int, bit_depth: int, color_type: int, raw_rows: bytes) -> bytes:
    """A PNG written by hand: IHDR + one zlib-compressed IDAT + IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw_rows, 9))
        + _png_chunk(b"IEND", b"")
    )


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _asym(h: int = 5, w: int = 7, seed: int = 0) -> np.ndarray:
    """An asymmetric RGB test pattern (random, so every transpose differs)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth(h: int = 96, w: int = 128) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], 2).astype(
        np.uint8
    )


def _cmyk_profile(corner_rgb) -> bytes:
    """A minimal ICC v2 CMYK profile: a lut8 A2B0 with a 2-point grid (CMYK corners -> Lab).

    ``corner_rgb(c, m, y, k)`` (each 0 or 1) gives the sRGB colour of that CMYK corner.
    """
    corners = list(itertools.product((0, 1), repeat=4))
    rgb = Image.frombytes("RGB", (16, 1), bytes(v for c in corners for v in corner_rgb(*c)))
    to_lab = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )
    lab_signed = ImageCms.applyTransform(rgb, to_lab).tobytes()  # Pillow stores a*, b* as signed bytes
    lab = bytes(v ^ (0x80 if i % 3 else 0) for i, v in enumerate(lab_signed))  # ICC lut8: offset 128
    ident = bytes(range(256))
    matrix = b"".join(struct.pack(">i", 65536 if i % 4 == 0 else 0) for i in range(9))
    a2b0 = b"mft1" + bytes(4) + bytes([4, 3, 2, 0]) + matrix + ident * 4 + lab + ident * 3
    d50 = struct.pack(">iii", 63190, 65536, 54061)
    tags = [(b"A2B0", a2b0), (b"wtpt", b"XYZ " + bytes(4) + d50)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = struct.pack(">I", offset + len(body)) + bytes(4) + struct.pack(">I", 0x02100000)
    header += b"prtrCMYKLab " + bytes(12) + b"acsp" + bytes(32) + d50
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


@functools.cache
def _srgb_icc() -> bytes:
    # one profile per run: littleCMS stamps each new one with the current second
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _save_pil(im: Image.Image, path: Path, **params) -> Path:
    im.save(path, **params)
    return path


# --------------------------------------------------------------------------- bundled data


def test_test_photos_are_small_real_jpegs():
    names = ["astronaut", *FACE_PHOTOS]
    for name in names:
        path = DATA / f"{name}.jpg"
        assert path.stat().st_size < 150_000, path
        img = read_image(path)
        assert img.format == "JPEG"
        assert img.rgb.dtype == np.uint8 and img.rgb.ndim == 3 and img.rgb.shape[2] == 3
        if name == "astronaut":
            assert img.size == (512, 512)
        else:
            assert max(img.size) == 640
    assert (DATA / "README.md").read_text().count("MIT") >= 1
    sample = SAMPLES / "astronaut.jpg"
    assert sample.read_bytes() == (DATA / "astronaut.jpg").read_bytes()
    assert (SAMPLES / "README.md").exists()


def test_read_path_fills_metadata():
    img = read_image(DATA / "astronaut.jpg")
    assert isinstance(img, LoadedImage)
    assert img.source == str(DATA / "astronaut.jpg")
    assert img.original_mode == "RGB" and img.bit_depth == 8
    assert img.alpha is None
    assert (img.width, img.height) == img.size == (512, 512)
    assert img.rgb.flags.c_contiguous and img.rgb.flags.writeable
    assert load_image(str(DATA / "astronaut.jpg")).shape == (512, 512, 3)


# --------------------------------------------------------------------------- modes


def test_rgb_png_exact(tmp_path):
    a = _asym()
    img = read_image(_save_pil(Image.fromarray(a), tmp_path / "rgb.png"))
    assert img.format == "PNG" and img.original_mode == "RGB"
    np.testing.assert_array_equal(img.rgb, a)


def test_rgba_png_alpha_split(tmp_path):
    a = _asym()
    alpha = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    img = read_image(_save_pil(Image.fromarray(np.dstack([a, alpha])), tmp_path / "rgba.png"))
    assert img.original_mode == "RGBA"
    np.testing.assert_array_equal(img.rgb, a)
    np.testing.assert_array_equal(img.alpha, alpha)


@pytest.mark.parametrize("suffix", ["png", "tiff", "bmp", "webp"])
def test_gray_l(tmp_path, suffix):
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    params = {"lossless": True} if suffix == "webp" else {}
    img = read_image(_save_pil(Image.fromarray(g), tmp_path / f"g.{suffix}", **params))
    np.testing.assert_array_equal(img.rgb[:, :, 0], g)
    np.testing.assert_array_equal(img.rgb[:, :, 0], img.rgb[:, :, 2])


def test_la_png(tmp_path):
    la = np.dstack([np.full((4, 4), 90, np.uint8), np.arange(16, dtype=np.uint8).reshape(4, 4) * 16])
    img = read_image(_save_pil(Image.fromarray(la), tmp_path / "la.png"))
    assert img.original_mode == "LA"
    assert (img.rgb == 90).all()
    np.testing.assert_array_equal(img.alpha, la[:, :, 1])


def test_bilevel_png(tmp_path):
    im = Image.new("1", (8, 2), 0)
    im.putpixel((3, 1), 1)
    img = read_image(_save_pil(im, tmp_path / "bw.png"))
    assert img.original_mode == "1" and img.bit_depth == 1
    assert img.rgb[1, 3].tolist() == [255, 255, 255] and img.rgb[0, 0].tolist() == [0, 0, 0]


def test_palette_without_transparency(tmp_path):
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.putdata([0, 1, 2])
    img = read_image(_save_pil(im, tmp_path / "p.png"))
    assert img.original_mode == "P" and img.alpha is None
    assert img.rgb[0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


@pytest.mark.parametrize("suffix", ["png", "gif"])
def test_palette_transparency_becomes_alpha(tmp_path, suffix):
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.putdata([0, 1, 2])
    img = read_image(_save_pil(im, tmp_path / f"pt.{suffix}", transparency=1))
    assert img.alpha is not None
    assert img.alpha.tolist() == [[255, 0, 255]]
    assert img.rgb[0, 0].tolist() == [255, 0, 0] and img.rgb[0, 2].tolist() == [0, 0, 255]


def test_palette_with_alpha_pil_input():
    im = Image.new("PA", (2, 1))
    im.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    im.putdata([(0, 255), (1, 0)])
    img = read_image(im)
    assert img.rgb[0].tolist() == [[10, 20, 30], [40, 50, 60]]
    assert img.alpha.tolist() == [[255, 0]]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_trns_transparency_becomes_alpha(tmp_path, mode):
    im = Image.new(mode, (2, 1), 0)
    im.putpixel((1, 0), 200 if mode == "L" else (200, 200, 200))
    key = 200 if mode == "L" else (200, 200, 200)
    img = read_image(_save_pil(im, tmp_path / "t.png", transparency=key))
    assert img.alpha.tolist() == [[255, 0]]


def test_16bit_gray_png_ramp(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 4).round().astype(np.uint16).reshape(4, 64)
    path = _save_pil(Image.fromarray(ramp), tmp_path / "g16.png")
    img = read_image(path)
    assert img.original_mode.startswith("I;16") and img.bit_depth == 16
    row = img.rgb[:, :, 0].ravel()
    assert (np.diff(row.astype(int)) >= 0).all(), "16-bit ramp must stay monotonic"
    assert row[0] == 0 and row[-1] == 255
    # scaled by 257 with rounding, not clipped at 255 (which would saturate almost everything)
    np.testing.assert_array_equal(row, ((ramp.ravel().astype(np.uint32) + 128) // 257).astype(np.uint8))
    assert 120 <= int(np.median(row)) <= 135


def test_16bit_big_endian_and_int32_tiff(tmp_path):
    vals = np.array([[0, 257, 32896, 65535]], np.uint16)
    be = Image.frombytes("I;16B", (4, 1), vals.astype(">u2").tobytes())
    img = read_image(_save_pil(be, tmp_path / "be.tif"))
    assert img.original_mode == "I;16B"
    assert img.rgb[0, :, 0].tolist() == [0, 1, 128, 255]
    i32 = Image.fromarray(vals.astype(np.int32))
    assert i32.mode == "I"
    img = read_image(_save_pil(i32, tmp_path / "i.tif"))
    assert img.original_mode == "I"
    assert img.rgb[0, :, 0].tolist() == [0, 1, 128, 255]


def test_float_tiff(tmp_path):
    f = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)
    img = read_image(_save_pil(Image.fromarray(f), tmp_path / "f.tif"))
    assert img.original_mode == "F"
    assert img.rgb[0, :, 0].tolist() == [0, 64, 128, 255]


def test_16bit_rgb_png(tmp_path):
    # Pillow has no 16-bit RGB mode, so write a 48-bit PNG by hand.
    px = [(65535, 0, 0), (0, 32896, 0), (0, 0, 257), (65535, 65535, 65535)]
    row = b"\x00" + b"".join(struct.pack(">HHH", *p) for p in px)
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png(4, 1, 16, 2, row))
    img = read_image(path)
    assert img.bit_depth == 16 and img.format == "PNG"
    expected = [[255, 0, 0], [0, 128, 0], [0, 0, 1], [255, 255, 255]]
    assert np.abs(img.rgb[0].astype(int) - np.array(expected)).max() <= 1


def test_cmyk_jpeg_plain_is_red(tmp_path):
    path = _save_pil(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    img = read_image(path)
    assert img.original_mode == "CMYK" and img.icc_profile is None
    r, g, b = img.rgb[8, 8].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_cmyk_jpeg_with_icc_profile_goes_through_the_profile(tmp_path):
    naive = _cmyk_profile(lambda c, m, y, k: tuple(round(255 * (1 - v) * (1 - k)) for v in (c, m, y)))
    path = _save_pil(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "red.jpg", icc_profile=naive)
    img = read_image(path)
    r, g, b = img.rgb[8, 8].astype(int)
    assert r > 200 and g < 60 and b < 60
    assert img.icc_profile is None  # the pixels are sRGB now
    # A profile that maps every ink to green proves the embedded profile is applied.
    green = _cmyk_profile(lambda *corner: (0, 200, 0))
    path = _save_pil(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "green.jpg", icc_profile=green)
    r, g, b = read_image(path).rgb[8, 8].astype(int)
    assert g > 150 and r < 80 and b < 80


def test_cmyk_tiff(tmp_path):
    img = read_image(_save_pil(Image.new("CMYK", (4, 4), (255, 0, 255, 0)), tmp_path / "c.tif"))
    assert img.rgb[0, 0].tolist() == [0, 255, 0]


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV"])
def test_other_colour_spaces_via_pil(mode):
    if mode == "LAB":  # bytes: L, then a* and b* as signed bytes (Pillow/littlecms convention)
        src = Image.frombytes("LAB", (2, 1), bytes([140, 30, 20, 200, 0, 0]))
    else:
        src = Image.fromarray(_smooth(8, 8)).convert(mode)
    img = read_image(src)
    assert img.original_mode == mode
    np.testing.assert_array_equal(img.rgb, np.asarray(src.convert("RGB")))


def test_ycbcr_jpeg_and_lab_tiff(tmp_path):
    a = _smooth()
    img = read_image(_save_pil(Image.fromarray(a), tmp_path / "y.jpg", quality=95))
    assert _psnr(img.rgb, a) > 30
    lab = Image.frombytes("LAB", (2, 2), bytes([200, 0, 0] * 4))  # L=78 %, neutral
    img = read_image(_save_pil(lab, tmp_path / "lab.tif"))
    assert img.original_mode == "LAB"
    r, g, b = img.rgb[0, 0].astype(int)
    assert abs(r - g) < 12 and abs(g - b) < 12 and r > 170  # light, neutral


def test_webp_and_tiff_alpha(tmp_path):
    rgba = np.dstack([_asym(), np.full((5, 7), 100, np.uint8)])
    for name, params in (("a.webp", {"lossless": True}), ("a.tif", {})):
        img = read_image(_save_pil(Image.fromarray(rgba), tmp_path / name, **params))
        np.testing.assert_array_equal(img.rgb, rgba[:, :, :3])
        np.testing.assert_array_equal(img.alpha, rgba[:, :, 3])


@pytest.mark.parametrize("suffix", ["gif", "webp", "png"])
def test_animated_files_give_the_first_frame(tmp_path, suffix):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / f"anim.{suffix}"
    extra = {"lossless": True} if suffix == "webp" else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 3
    img = read_image(path)
    assert img.rgb[4, 4].tolist() == [255, 0, 0]


# --------------------------------------------------------------------------- EXIF orientation

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_exact(tmp_path, orientation):
    base = Image.fromarray(_asym(5, 7, seed=orientation))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "portraitfx-test"  # Make: must survive
    path = _save_pil(base, tmp_path / f"o{orientation}.png", exif=exif.tobytes())
    img = read_image(path)
    expected = base if orientation == 1 else base.transpose(_TRANSPOSE[orientation])
    np.testing.assert_array_equal(img.rgb, np.asarray(expected))
    with Image.open(path) as again:
        np.testing.assert_array_equal(img.rgb, np.asarray(ImageOps.exif_transpose(again)))
    out = Image.Exif()
    out.load(img.exif)
    assert out.get(0x0112, 1) == 1
    assert out[0x010F] == "portraitfx-test"


def test_exif_orientation_jpeg_with_alpha_free_photo(tmp_path):
    a = _smooth(60, 90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save_pil(Image.fromarray(a), tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    img = read_image(path)
    assert img.rgb.shape == (90, 60, 3)
    assert _psnr(img.rgb, np.rot90(a, -1)) > 30


def test_orientation_applies_to_alpha(tmp_path):
    rgba = np.dstack([_asym(3, 4), np.arange(12, dtype=np.uint8).reshape(3, 4)])
    exif = Image.Exif()
    exif[0x0112] = 8
    img = read_image(_save_pil(Image.fromarray(rgba), tmp_path / "oa.png", exif=exif.tobytes()))
    np.testing.assert_array_equal(img.alpha, np.rot90(rgba[:, :, 3], 1))


# --------------------------------------------------------------------------- limits and bombs


def test_decompression_bomb_png_fails_fast(tmp_path):
    w = h = 20000  # 400 MP claimed by the header of a file of ~100 bytes
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(w, h, 1, 0, b"\x00" * (w // 8 + 1) * 4))
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as exc:
        read_image(path)
    assert time.perf_counter() - start < 1.0
    msg = str(exc.value)
    assert "400,000,000" in msg and "50,000,000" in msg and "PORTRAITFX_MAX_PIXELS" in msg
    assert "bomb.png" in msg


def test_header_size_checked_before_decoding(tmp_path):
    path = tmp_path / "big.png"  # 64 MP: over our 50 MP default but under Pillow's own guard
    path.write_bytes(_png(8000, 8000, 1, 0, b"\x00" * 1001 * 4))
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="8000×8000"):
        read_image(path)
    assert time.perf_counter() - start < 1.0


def test_max_pixels_argument_and_env(monkeypatch):
    with pytest.raises(ImageTooLargeError, match="max_pixels"):
        read_image(DATA / "astronaut.jpg", max_pixels=100_000)
    assert read_image(DATA / "astronaut.jpg", max_pixels=512 * 512).size == (512, 512)
    monkeypatch.setenv("PORTRAITFX_MAX_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError, match="1,000 pixels"):
        read_image(DATA / "astronaut.jpg")
    assert read_image(DATA / "astronaut.jpg", max_pixels=10**6).size == (512, 512)  # explicit wins
    monkeypatch.setenv("PORTRAITFX_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="PORTRAITFX_MAX_PIXELS"):
        read_image(DATA / "astronaut.jpg")
    with pytest.raises(ConfigError):
        read_image(DATA / "astronaut.jpg", max_pixels=0)


def test_pillow_bomb_error_and_warning_become_image_too_large(monkeypatch):
    data = encode_image(np.zeros((64, 64, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    # Pillow's own guard (2 × 1500 < 4096 pixels) fires inside Image.open.
    with pytest.raises(ImageTooLargeError, match="4,096 pixels"):
        read_image(data, max_pixels=1500)
    # A larger explicit limit lifts Pillow's guard for this read only.
    assert read_image(data, max_pixels=5000).size == (64, 64)
    assert Image.MAX_IMAGE_PIXELS == 1000
    small = encode_image(np.zeros((40, 40, 3), np.uint8))  # 1600 px: only a warning for Pillow
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLargeError):
            read_image(small, max_pixels=1200)


# --------------------------------------------------------------------------- damaged and wrong content


@pytest.mark.parametrize("suffix", ["jpg", "png"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files(tmp_path, suffix, keep):
    a = np.asarray(Image.open(DATA / "astronaut.jpg"))
    data = encode_image(a, "JPEG" if suffix == "jpg" else "PNG")
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptInputError, match=rf"'.*cut\.{suffix}' is damaged or truncated"):
        read_image(path)


def test_truncation_is_detected_even_if_another_library_relaxed_pillow(tmp_path, monkeypatch):
    from PIL import ImageFile

    data = (DATA / "astronaut.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as face_recognition does at import
    with pytest.raises(CorruptInputError, match="damaged or truncated"):
        read_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for the other library


def test_damaged_header(tmp_path):
    path = tmp_path / "head.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    with pytest.raises(CorruptInputError, match=r"head\.png"):
        read_image(path)


def _mp4(brand: bytes) -> bytes:
    return struct.pack(">I", 24) + b"ftyp" + brand + b"\x00\x00\x02\x00" + brand + b"isom" + b"\x00" * 64


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "hi")
    return buf.getvalue()


NON_IMAGES = {
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "is a PDF document, not an image"),
    "zip": (_zip_bytes(), "is a ZIP archive, not an image"),
    "mp4": (_mp4(b"mp42"), "is an MP4 video, not an image; for videos use the video commands"),
    "mov": (_mp4(b"qt  "), "is a QuickTime (MOV) video, not an image"),
    "webm": (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm" + b"\x00" * 32, "is a Matroska/WebM video"),
    "avi": (b"RIFF\x00\x10\x00\x00AVI LIST" + b"\x00" * 32, "is an AVI video"),
    "mp3": (
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 8,
        "is an MP3 audio file, not an image",
    ),
    "mp3sync": (b"\xff\xfb\x90\x64" + b"\x00" * 64, "is an MP3/AAC audio file, not an image"),
    "wav": (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 32, "is a WAV audio file, not an image"),
    "ogg": (b"OggS\x00\x02" + b"\x00" * 40, "is an Ogg audio/video file, not an image"),
    "m4a": (_mp4(b"M4A "), "is an MPEG-4 audio file"),
    "html": (b"\n  <!DOCTYPE html>\n<html><body>hi</body></html>", "is an HTML page, not an image"),
    "text": (b"name,age\nalice,31\nbob,27\n", "is a text file, not an image"),
    "svg": (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "is an SVG vector image"),
    "heic": (_mp4(b"heic"), "is a HEIC/HEIF image, which portraitfx cannot read"),
    "npy": (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'", "numpy.load"),
}


@pytest.mark.parametrize("kind", sorted(NON_IMAGES))
def test_non_image_content_is_named(tmp_path, kind):
    content, expected = NON_IMAGES[kind]
    path = tmp_path / "x.jpg"  # the extension lies: content decides
    path.write_bytes(content)
    with pytest.raises(UnsupportedFormatError) as exc:
        read_image(path)
    msg = str(exc.value)
    assert msg.startswith(f"'{path}' ")
    assert expected in msg
    assert "\n" not in msg


def test_video_sniff_kinds():
    assert sniff(_mp4(b"isom")).kind == "video"
    assert sniff(b"\x1a\x45\xdf\xa3").kind == "video"
    assert sniff(_mp4(b"M4A ")).kind == "audio"
    assert sniff(b"%PDF-1.4").format == "PDF"
    assert sniff(_mp4(b"avif")) == ("image", "AVIF", "an AVIF image")
    assert sniff(b"").kind == "empty"
    assert sniff(b"\x00\x01\x02\x03\xfe").kind == "unknown"


def test_unknown_binary_is_unsupported(tmp_path):
    path = tmp_path / "blob.png"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UnsupportedFormatError, match="supported formats: JPEG, PNG"):
        read_image(path)


def test_empty_missing_folder(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(CorruptInputError, match="empty"):
        read_image(empty)
    with pytest.raises(InputNotFoundError, match="not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(InputNotFoundError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(CorruptInputError, match="empty"):
        read_image(b"")


def test_extension_is_not_trusted(tmp_path):
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(encode_image(_asym()))
    assert read_image(path).format == "PNG"


# --------------------------------------------------------------------------- other inputs


def test_bytes_like_and_file_object_inputs():
    data = (DATA / "astronaut.jpg").read_bytes()
    ref = read_image(DATA / "astronaut.jpg").rgb
    for src in (data, bytearray(data), memoryview(data), io.BytesIO(data)):
        img = read_image(src)
        assert img.source is None and img.format == "JPEG"
        np.testing.assert_array_equal(img.rgb, ref)


def test_pil_image_input_applies_orientation():
    exif = Image.Exif()
    exif[0x0112] = 3
    data = encode_image(_asym(), exif=None)
    im = Image.open(io.BytesIO(data))
    img = read_image(im)
    np.testing.assert_array_equal(img.rgb, _asym())
    buf = io.BytesIO()
    Image.fromarray(_asym()).save(buf, "PNG", exif=exif.tobytes())
    img = read_image(Image.open(io.BytesIO(buf.getvalue())))
    np.testing.assert_array_equal(img.rgb, _asym()[::-1, ::-1])


def test_numpy_inputs_of_various_dtypes():
    a = _asym()
    out = read_image(a).rgb
    np.testing.assert_array_equal(out, a)
    assert not np.shares_memory(out, a)
    np.testing.assert_array_equal(load_image(a[:, :, 0]), np.repeat(a[:, :, :1], 3, 2))
    np.testing.assert_array_equal(load_image(a[:, :, :1]), np.repeat(a[:, :, :1], 3, 2))
    rgba = read_image(np.dstack([a, np.full((5, 7), 9, np.uint8)]))
    np.testing.assert_array_equal(rgba.alpha, np.full((5, 7), 9))
    u16 = np.array([[0, 257, 32896, 65535]], np.uint16)
    assert load_image(u16)[0, :, 0].tolist() == [0, 1, 128, 255]
    for dt in (np.float16, np.float32, np.float64):
        f = np.array([[0.0, 0.5, 1.0]], dt)
        assert load_image(f)[0, :, 0].tolist() == [0, 128, 255]
    assert load_image(np.array([[True, False]]))[0, :, 0].tolist() == [255, 0]
    assert load_image(np.array([[3, 200]], np.int64))[0, :, 0].tolist() == [3, 200]
    assert read_image(a[::-1, ::2]).rgb.flags.c_contiguous  # non-contiguous views are fine


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.full((2, 2, 3), 2.0), r"\[0, 1\].*divide by 255"),
        (np.array([[np.nan, 0.5]]), "NaN"),
        (np.zeros((2, 2, 2), np.uint8), "H×W×3"),
        (np.zeros((2, 2, 3, 1), np.uint8), "H×W×3"),
        (np.zeros((0, 3, 3), np.uint8), "empty"),
        (np.array([[-1, 300]], np.int32), "0..255"),
        (np.zeros((2, 2), np.complex64), "dtype"),
    ],
)
def test_bad_numpy_inputs(array, match):
    with pytest.raises(InputError, match=match):
        read_image(array)


def test_unsupported_input_type():
    with pytest.raises(InputError, match="cannot read an image from int"):
        read_image(42)


# --------------------------------------------------------------------------- saving


def test_save_rejects_unknown_extension(tmp_path):
    with pytest.raises(ConfigError, match=r"\.jpg, \.jpeg, \.png, \.webp, \.tif, \.tiff, \.bmp"):
        save_image(tmp_path / "x.gif", _asym())
    assert list(tmp_path.iterdir()) == []


def test_save_validates_arrays(tmp_path):
    with pytest.raises(InputError, match=r"expected an H×W×3 uint8 RGB array, got float64 \(512, 512\)"):
        save_image(tmp_path / "x.png", np.zeros((512, 512)))
    with pytest.raises(InputError, match=r"got uint8 \(4, 4, 2\)"):
        save_image(tmp_path / "x.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InputError, match="got list"):
        save_image(tmp_path / "x.png", [[1, 2]])
    with pytest.raises(ConfigError, match="quality"):
        save_image(tmp_path / "x.jpg", _asym(), quality=0)
    with pytest.raises(ConfigError, match="cannot store transparency"):
        save_image(tmp_path / "x.jpg", _asym(), alpha=np.zeros((5, 7), np.uint8))
    with pytest.raises(InputError, match="alpha has shape"):
        save_image(tmp_path / "x.png", _asym(), alpha=np.zeros((3, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff", ".webp"])
def test_lossless_round_trip(tmp_path, suffix):
    a = _asym(9, 11)
    quality = 100 if suffix == ".webp" else 95  # WebP quality 100 = lossless
    path = save_image(tmp_path / f"rt{suffix}", a, quality=quality)
    assert path == tmp_path / f"rt{suffix}"
    np.testing.assert_array_equal(load_image(path), a)


def test_gray_array_is_saved_as_gray(tmp_path):
    g = np.arange(64, dtype=np.uint8).reshape(8, 8)
    for suffix in (".png", ".jpg", ".webp"):
        path = save_image(tmp_path / f"g{suffix}", g, quality=100)
        img = read_image(path)
        assert np.abs(img.rgb[:, :, 1].astype(int) - g).max() <= 2
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "L"


def test_alpha_round_trip(tmp_path):
    a = _asym()
    alpha = np.linspace(0, 255, 35).astype(np.uint8).reshape(5, 7)
    for suffix in (".png", ".tif", ".webp"):
        path = save_image(tmp_path / f"a{suffix}", a, alpha=alpha, quality=100)
        img = read_image(path)
        np.testing.assert_array_equal(img.alpha, alpha)
        np.testing.assert_array_equal(img.rgb, a)
    rgba = np.dstack([a, alpha])
    np.testing.assert_array_equal(read_image(save_image(tmp_path / "b.png", rgba)).alpha, alpha)
    gray = save_image(tmp_path / "la.png", a[:, :, 0], alpha=alpha)
    np.testing.assert_array_equal(read_image(gray).alpha, alpha)


def test_jpeg_quality_is_honoured(tmp_path):
    a = read_image(DATA / "astronaut.jpg").rgb
    lo = save_image(tmp_path / "lo.jpg", a, quality=40)
    hi = save_image(tmp_path / "hi.jpg", a, quality=95)
    assert hi.stat().st_size > lo.stat().st_size * 1.5
    assert _psnr(load_image(hi), a) > _psnr(load_image(lo), a) + 3
    wlo = save_image(tmp_path / "lo.webp", a, quality=30)
    whi = save_image(tmp_path / "hi.webp", a, quality=90)
    assert whi.stat().st_size > wlo.stat().st_size
    assert _psnr(load_image(whi), a) > _psnr(load_image(wlo), a)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_icc_profile_preserved(tmp_path, suffix):
    icc = _srgb_icc()
    path = save_image(tmp_path / f"icc{suffix}", _asym(), icc_profile=icc)
    assert read_image(path).icc_profile == icc
    with pytest.raises(ConfigError, match="CMYK"):
        save_image(tmp_path / f"bad{suffix}", _asym(), icc_profile=_cmyk_profile(lambda *c: (0, 0, 0)))
    gray = save_image(tmp_path / f"gray{suffix}", _asym()[:, :, 0], icc_profile=icc)
    # an RGB profile does not describe gray pixels (WebP has no gray mode: stored as RGB)
    assert read_image(gray).icc_profile == (icc if suffix == ".webp" else None)


def test_loaded_image_keeps_metadata_and_exif_orientation_is_reset(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "maker"
    src = _save_pil(
        Image.fromarray(_smooth(20, 30)), tmp_path / "src.jpg", exif=exif.tobytes(), icc_profile=_srgb_icc()
    )
    loaded = read_image(src)
    assert loaded.size == (20, 30)
    out = save_image(tmp_path / "copy.jpg", loaded)
    again = read_image(out)
    assert again.size == (20, 30)  # not rotated a second time
    assert again.icc_profile == _srgb_icc()
    meta = Image.Exif()
    meta.load(again.exif)
    assert meta[0x010F] == "maker" and meta.get(0x0112, 1) == 1
    # explicit exif with an orientation is normalised too
    out2 = save_image(tmp_path / "e.png", _asym(), exif=exif.tobytes())
    assert read_image(out2).size == (7, 5)


def test_save_is_atomic_when_the_encoder_fails(tmp_path, monkeypatch):
    dest = tmp_path / "out.png"
    dest.write_bytes(b"previous content")

    def broken_save(self, fp, format=None, **params):
        Path(fp).write_bytes(b"\x89PNG half-written")
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError, match="exploded"):
        save_image(dest, _asym())
    assert dest.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_save_disk_error_becomes_output_error(tmp_path, monkeypatch):
    def full_disk(self, fp, format=None, **params):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OutputError, match="No space left"):
        save_image(tmp_path / "o.jpg", _asym())
    assert list(tmp_path.iterdir()) == []


def test_save_never_overwrites_an_input(tmp_path):
    src = save_image(tmp_path / "in.png", _asym())
    before = src.read_bytes()
    read_image(src)
    with pytest.raises(OutputError, match="refusing to overwrite input"):
        save_image(src, np.zeros((5, 7, 3), np.uint8))
    assert src.read_bytes() == before
    other = save_image(tmp_path / "other.png", _asym())
    with pytest.raises(OutputError, match="refusing to overwrite input"):
        save_image(other, _asym(), inputs=(other,))
    with pytest.raises(OutputError, match="does not exist"):
        save_image(tmp_path / "no" / "dir.png", _asym())


def test_encode_image_formats():
    a = _asym()
    assert encode_image(a)[:8] == b"\x89PNG\r\n\x1a\n"
    assert encode_image(a, "jpg")[:3] == b"\xff\xd8\xff"
    assert read_image(encode_image(a, "webp", quality=100)).format == "WEBP"
    assert read_image(encode_image(a, "TIF")).format == "TIFF"
    np.testing.assert_array_equal(load_image(encode_image(a, "bmp")), a)
    with pytest.raises(ConfigError, match="cannot encode"):
        encode_image(a, "gif")
