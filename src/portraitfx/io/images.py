"""Safe image reading and writing.

Every image that enters portraitfx goes through :func:`read_image` (or its shortcut
:func:`load_image`), and every image written goes through :func:`save_image`.

Reading:

* The real format is sniffed from the first bytes; the file extension is never
  trusted. Known non-image content (PDF, ZIP, videos, audio, HTML, text, ...) is
  refused with a one-line message saying what the file is.
* The pixel count is checked against a limit (default 50 MP, ``max_pixels=`` or the
  ``PORTRAITFX_MAX_PIXELS`` environment variable) from the header, *before* any pixel
  is decoded, so decompression bombs fail fast.
* Truncated or damaged files raise :class:`~portraitfx.errors.CorruptInputError`;
  Pillow's ``LOAD_TRUNCATED_IMAGES`` is never enabled.
* The EXIF orientation is applied (all 8 values) and reset to 1 in the returned EXIF.
* Whatever the source mode (CMYK, palette, gray, 16-bit, float, YCbCr, LAB, HSV, ...)
  the pixels come back as an H×W×3 ``uint8`` RGB array; transparency is split off
  into a separate H×W ``uint8`` alpha plane.
* Animated GIF/WebP/APNG files: only the first frame is read.

Writing is atomic (a temporary file renamed into place) and never replaces a file
that was read as an input in this process.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "gray.png"
    >>> _ = save_image(out, np.full((4, 6, 3), 128, np.uint8))
    >>> img = read_image(out)
    >>> img.format, img.size, img.rgb.shape, int(img.rgb[0, 0, 0])
    ('PNG', (6, 4), (4, 6, 3), 128)
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from portraitfx.errors import (
    ConfigError,
    CorruptInputError,
    ImageTooLargeError,
    InputError,
    InputNotFoundError,
    OutputError,
    PortraitFxError,
    UnsupportedFormatError,
)
from portraitfx.io.paths import atomic_output, check_input_path, register_input

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "READABLE_FORMATS",
    "SAVE_EXTENSIONS",
    "LoadedImage",
    "Sniffed",
    "encode_image",
    "image_from_any",
    "load_image",
    "read_image",
    "save_image",
    "sniff",
]

DEFAULT_MAX_PIXELS = 50_000_000
"""Default pixel limit of :func:`read_image` (50 megapixels)."""

MAX_PIXELS_ENV = "PORTRAITFX_MAX_PIXELS"
"""Environment variable overriding :data:`DEFAULT_MAX_PIXELS`."""

READABLE_FORMATS = (
    "JPEG",
    "PNG",
    "WEBP",
    "TIFF",
    "BMP",
    "GIF",
    "ICO",
    "PPM",
    "JPEG2000",
    "QOI",
    "PSD",
    "AVIF",
)
"""Formats :func:`read_image` decodes (Pillow plugin names); anything else is refused."""

_SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
SAVE_EXTENSIONS = tuple(_SAVE_FORMATS)
"""File extensions :func:`save_image` writes."""

_ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})
_SNIFF_BYTES = 1024
_ORIENTATION_TAG = 0x0112

# --------------------------------------------------------------------------- sniffing


class Sniffed(NamedTuple):
    """What the first bytes of some content say it is.

    Attributes:
        kind: ``"image"``, ``"video"``, ``"audio"``, ``"document"``, ``"archive"``,
            ``"text"``, ``"data"``, ``"executable"``, ``"empty"`` or ``"unknown"``.
        format: for images the Pillow format name (``"JPEG"``, ``"PNG"``, ...); for
            other kinds a short name (``"PDF"``, ``"MP4"``, ...); ``None`` if unknown.
        description: a noun phrase for messages, e.g. ``"a PDF document"``.
    """

    kind: str
    format: str | None
    description: str


_IMAGE_NAMES = {
    "JPEG": "a JPEG image",
    "PNG": "a PNG image",
    "GIF": "a GIF image",
    "WEBP": "a WebP image",
    "TIFF": "a TIFF image",
    "BMP": "a BMP image",
    "ICO": "an ICO icon",
    "PPM": "a PPM/PGM/PBM image",
    "JPEG2000": "a JPEG 2000 image",
    "QOI": "a QOI image",
    "PSD": "a Photoshop (PSD) image",
    "AVIF": "an AVIF image",
    "HEIF": "a HEIC/HEIF image",
    "JXL": "a JPEG XL image",
    "SVG": "an SVG vector image",
}

_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})

# (prefix, offset, kind, format, description) for non-image content with a fixed signature.
_SIGNATURES: tuple[tuple[bytes, int, str, str, str], ...] = (
    (b"%PDF-", 0, "document", "PDF", "a PDF document"),
    (b"PK\x03\x04", 0, "archive", "ZIP", "a ZIP archive"),
    (b"PK\x05\x06", 0, "archive", "ZIP", "a ZIP archive"),
    (b"\x1f\x8b", 0, "archive", "GZIP", "a gzip archive"),
    (b"BZh", 0, "archive", "BZIP2", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", 0, "archive", "XZ", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "archive", "7Z", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "archive", "RAR", "a RAR archive"),
    (b"ustar", 257, "archive", "TAR", "a tar archive"),
    (b"\x1a\x45\xdf\xa3", 0, "video", "MKV", "a Matroska/WebM video"),
    (b"FLV\x01", 0, "video", "FLV", "a Flash (FLV) video"),
    (b"\x00\x00\x01\xba", 0, "video", "MPEG", "an MPEG video"),
    (b"\x00\x00\x01\xb3", 0, "video", "MPEG", "an MPEG video"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", 0, "video", "ASF", "a Windows Media (ASF/WMV) file"),
    (b"OggS", 0, "audio", "OGG", "an Ogg audio/video file"),
    (b"fLaC", 0, "audio", "FLAC", "a FLAC audio file"),
    (b"ID3", 0, "audio", "MP3", "an MP3 audio file"),
    (b"\x7fELF", 0, "executable", "ELF", "an executable program"),
    (b"\x93NUMPY", 0, "data", "NPY", "a NumPy .npy array file"),
    (b"SQLite format 3\x00", 0, "data", "SQLITE", "an SQLite database"),
    (b"\x89HDF\r\n\x1a\n", 0, "data", "HDF5", "an HDF5 data file"),
)


def _sniff_ftyp(h: bytes) -> Sniffed:
    """Classify an ISO base media file (MP4, MOV, HEIC, AVIF, M4A, ...) by its brands."""
    (box_size,) = struct.unpack(">I", h[:4])
    end = min(len(h), box_size if 16 <= box_size <= 4096 else 16)
    brands = {h[8:12]} | {h[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & {b"avif", b"avis"}:
        return Sniffed("image", "AVIF", _IMAGE_NAMES["AVIF"])
    if brands & _HEIF_BRANDS:
        return Sniffed("image", "HEIF", _IMAGE_NAMES["HEIF"])
    if h[8:12] in _AUDIO_BRANDS:
        return Sniffed("audio", "M4A", "an MPEG-4 audio file")
    if h[8:12] == b"qt  ":
        return Sniffed("video", "MOV", "a QuickTime (MOV) video")
    return Sniffed("video", "MP4", "an MP4 video")


def _looks_like_text(h: bytes) -> bool:
    if h.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 byte-order mark
        return True
    if b"\x00" in h:
        return False
    try:
        h.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(h) - 3:  # not merely a character cut at the end of the sample
            return False
    controls = sum(1 for b in h if b < 32 and b not in b"\t\n\r\f\v\b\x1b")
    return controls <= len(h) // 50


def sniff(head: bytes) -> Sniffed:
    """Tell what some content is from its first bytes (magic numbers).

    Args:
        head: the first bytes of the content; 1 kB is plenty, fewer works for most kinds.

    Returns:
        a :class:`Sniffed` tuple ``(kind, format, description)``.

    Example:
        >>> sniff(b"%PDF-1.7 ...")
        Sniffed(kind='document', format='PDF', description='a PDF document')
        >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n").format
        'PNG'
    """
    h = bytes(head[:_SNIFF_BYTES])
    if not h:
        return Sniffed("empty", None, "an empty file")

    def image(fmt: str) -> Sniffed:
        return Sniffed("image", fmt, _IMAGE_NAMES[fmt])

    if h.startswith(b"\xff\xd8\xff"):
        return image("JPEG")
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return image("PNG")
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return image("GIF")
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return image("WEBP")
    if h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return image("TIFF")
    if h[:2] == b"BM" and len(h) >= 18 and struct.unpack("<I", h[14:18])[0] in _BMP_HEADER_SIZES:
        return image("BMP")
    if h[:4] == b"\x00\x00\x01\x00" and len(h) >= 10 and h[4] + h[5] > 0 and h[9] == 0:
        return image("ICO")
    if (
        h[:1] == b"P"
        and h[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6")
        and h[2:3] in (b" ", b"\t", b"\n", b"\r")
    ):
        return image("PPM")
    if h.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return image("JPEG2000")
    if h[:4] == b"qoif":
        return image("QOI")
    if h[:4] == b"8BPS":
        return image("PSD")
    if h.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return image("JXL")
    if len(h) >= 12 and h[4:8] == b"ftyp":
        return _sniff_ftyp(h)
    if h[:4] == b"RIFF":
        if h[8:12] == b"AVI ":
            return Sniffed("video", "AVI", "an AVI video")
        if h[8:12] == b"WAVE":
            return Sniffed("audio", "WAV", "a WAV audio file")
    for prefix, offset, kind, fmt, description in _SIGNATURES:
        if h[offset : offset + len(prefix)] == prefix:
            return Sniffed(kind, fmt, description)
    if len(h) > 188 and h[0] == 0x47 and h[188] == 0x47:
        return Sniffed("video", "MPEG-TS", "an MPEG transport stream video")
    if len(h) >= 2 and h[0] == 0xFF and (h[1] & 0xE0) == 0xE0:
        return Sniffed("audio", "MP3", "an MP3/AAC audio file")
    if h[0] == 0x80 and len(h) > 1 and 2 <= h[1] <= 5:
        return Sniffed("data", "PICKLE", "a Python pickle")
    if h[:2] == b"MZ":
        return Sniffed("executable", "EXE", "a Windows executable")

    if _looks_like_text(h):
        text = h.decode("utf-8", "ignore").lstrip("\ufeff \t\r\n").lower()
        if text.startswith(("<!doctype html", "<html")) or "<html" in text or "<body" in text:
            return Sniffed("document", "HTML", "an HTML page")
        if "<svg" in text:
            return image("SVG")
        if text.startswith("<?xml"):
            return Sniffed("document", "XML", "an XML document")
        return Sniffed("text", "TEXT", "a text file")
    return Sniffed("unknown", None, "unrecognised content")


def _not_an_image(label: str, sn: Sniffed, head: bytes) -> InputError:
    """The error for content that cannot be read as an image."""
    if sn.kind == "empty":
        return CorruptInputError(f"{label} is empty (0 bytes)")
    if sn.kind == "image":  # an image format we do not decode
        return UnsupportedFormatError(
            f"{label} is {sn.description}, which portraitfx cannot read; convert it to PNG or JPEG first"
        )
    if sn.kind == "unknown":
        return UnsupportedFormatError(
            f"{label} is not a supported image (unrecognised content starting with {head[:8].hex(' ')}); "
            f"supported formats: {', '.join(READABLE_FORMATS)}"
        )
    hint = ""
    if sn.kind == "video":
        hint = "; for videos use the video commands (see `portraitfx --help`)"
    elif sn.format == "NPY":
        hint = "; load it with numpy.load() and pass the array"
    return UnsupportedFormatError(f"{label} is {sn.description}, not an image{hint}")


# --------------------------------------------------------------------------- data types


@dataclass
class LoadedImage:
    """An image read by :func:`read_image`, upright and in RGB.

    Attributes:
        rgb: H×W×3 ``uint8`` RGB pixels, EXIF orientation applied.
        alpha: H×W ``uint8`` transparency (255 = opaque) when the source had any
            (alpha channel, LA, palette or tRNS transparency), else ``None``.
        format: the real format sniffed from the content (``"JPEG"``, ``"PNG"``,
            ``"WEBP"``, ``"TIFF"``, ``"BMP"``, ``"GIF"``, ...); ``None`` for arrays.
        icc_profile: the embedded ICC profile when it describes the returned RGB
            pixels; ``None`` when absent or after a conversion to sRGB (CMYK, gray).
        exif: raw EXIF bytes with the orientation tag reset to 1, or ``None``.
        source: the path read, or ``None`` for bytes/arrays/PIL images.
        original_mode: the Pillow mode of the source (``"CMYK"``, ``"I;16"``, ...).
        bit_depth: bits per channel in the source (1, 8, 16 or 32).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    format: str | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    source: str | None = None
    original_mode: str = "RGB"
    bit_depth: int = 8

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels, like Pillow's ``Image.size``."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.rgb.shape[0])


# --------------------------------------------------------------------------- limits


def _resolve_max_pixels(max_pixels: int | None) -> int:
    source = "max_pixels"
    value: Any = max_pixels
    if max_pixels is None:
        env = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not env:
            return DEFAULT_MAX_PIXELS
        source = MAX_PIXELS_ENV
        try:
            value = int(env.replace("_", "").replace(",", ""))
        except ValueError:
            try:
                value = int(float(env))
            except ValueError:
                raise ConfigError(f"{MAX_PIXELS_ENV} must be a positive integer, got {env!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{source} must be a positive integer, got {value!r}")
    return int(value)


def _too_large(
    label: str, size: tuple[int, int] | None, pixels: int | None, limit: int
) -> ImageTooLargeError:
    if size is not None:
        what = f"{size[0]}×{size[1]} = {size[0] * size[1]:,} pixels"
    elif pixels is not None:
        what = f"{pixels:,} pixels"
    else:
        what = "too many pixels"
    return ImageTooLargeError(
        f"{label} is {what}, over the limit of {limit:,} pixels (refused before decoding); "
        f"to allow it pass max_pixels=... or set {MAX_PIXELS_ENV}"
    )


_pillow_globals_lock = threading.Lock()


@contextlib.contextmanager
def _strict_pillow(limit: int) -> Iterator[None]:
    """Run a decode with Pillow's process-wide switches set the safe way.

    * ``MAX_IMAGE_PIXELS`` is raised (never lowered) to ``limit``: our own header check
      runs right after ``Image.open``, and Pillow's guard would otherwise refuse images
      the caller explicitly allowed with a larger ``max_pixels``.
    * ``ImageFile.LOAD_TRUNCATED_IMAGES`` is forced off: some libraries (e.g.
      ``face_recognition``) switch it on at import, which would silently pad
      truncated files with gray.

    The globals are only touched (under a lock, restored afterwards) when needed.
    """
    current = Image.MAX_IMAGE_PIXELS
    raise_limit = current is not None and limit > current
    if not raise_limit and not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _pillow_globals_lock:
        saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
        if raise_limit:
            Image.MAX_IMAGE_PIXELS = limit
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _bomb_pixels(err: BaseException) -> int | None:
    match = re.search(r"\((\d+) pixels\)", str(err))
    return int(match.group(1)) if match else None


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if len(text) > 160:
        text = text[:157] + "..."
    return text or type(err).__name__


# --------------------------------------------------------------------------- pixel conversion


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _scale16(a: np.ndarray) -> np.ndarray:
    """Map 0..65535 to 0..255 with rounding (65535 -> 255, never clipped at 255)."""
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _normalise_range(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip((a.astype(np.float64) - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def _int32_to_u8(a: np.ndarray) -> np.ndarray:
    """Pillow mode ``I``: 16-bit data in a 32-bit container; other ranges are normalised."""
    if a.size and (a.min() < 0 or a.max() > 65535):
        return _normalise_range(a)
    return _scale16(a)


def _float_to_u8(a: np.ndarray) -> np.ndarray:
    """Pillow mode ``F``: [0, 1] -> 0..255; 0..255 kept; 0..65535 scaled; else normalised."""
    a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.clip(a + 0.5, 0, 255).astype(np.uint8)
    if lo >= 0.0 and hi <= 65535.0:
        return np.clip(a / 257.0 + 0.5, 0, 255).astype(np.uint8)
    return _normalise_range(a)


def _icc_space(icc: bytes | None) -> bytes | None:
    """The data colour space signature of an ICC profile (``b"RGB "``, ``b"CMYK"``, ``b"GRAY"``...)."""
    if not icc or len(icc) < 128:
        return None
    return bytes(icc[16:20])


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """CMYK -> sRGB through the embedded ICC profile when there is a usable one."""
    if _icc_space(icc) == b"CMYK":
        from PIL import ImageCms  # lazy: loads littlecms

        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc or b""))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(
                im, src, dst, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
            )
            if out is not None:
                return out
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to the plain conversion below
    return im.convert("RGB")


def _pil_to_arrays(im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    """Convert a decoded Pillow image of any mode to (rgb, alpha, icc_profile_still_valid)."""
    mode = im.mode
    space = _icc_space(icc)
    rgb_icc = icc if space == b"RGB " else None
    has_transparency = "transparency" in im.info

    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(im, icc)), None, None
    if mode in ("P", "PA"):
        if mode == "PA" or has_transparency or (im.palette is not None and im.palette.mode == "RGBA"):
            rgba = np.asarray(im.convert("RGBA"))
            return rgba[:, :, :3], rgba[:, :, 3], rgb_icc
        return np.asarray(im.convert("RGB")), None, rgb_icc
    if mode == "RGB":
        if has_transparency:
            rgba = np.asarray(im.convert("RGBA"))
            return rgba[:, :, :3], rgba[:, :, 3], rgb_icc
        return np.asarray(im), None, rgb_icc
    if mode in ("RGBA", "RGBa"):
        rgba = np.asarray(im if mode == "RGBA" else im.convert("RGBA"))
        return rgba[:, :, :3], rgba[:, :, 3], rgb_icc
    if mode in ("L", "1"):
        if has_transparency:
            la = np.asarray(im.convert("RGBA"))
            return la[:, :, :3], la[:, :, 3], None
        gray = np.asarray(im.convert("L") if mode == "1" else im)
        return _gray_to_rgb(gray), None, None
    if mode in ("LA", "La"):
        la = np.asarray(im if mode == "LA" else im.convert("LA"))
        return _gray_to_rgb(la[:, :, 0]), la[:, :, 1], None
    if mode.startswith("I;16"):
        return _gray_to_rgb(_scale16(np.asarray(im))), None, None
    if mode == "I":
        return _gray_to_rgb(_int32_to_u8(np.asarray(im))), None, None
    if mode == "F":
        return _gray_to_rgb(_float_to_u8(np.asarray(im))), None, None
    if mode in ("YCbCr", "LAB", "HSV", "RGBX"):
        return np.asarray(im.convert("RGB")), None, None if mode != "RGBX" else rgb_icc
    if "A" in mode or "a" in mode:
        rgba = np.asarray(im.convert("RGBA"))
        return rgba[:, :, :3], rgba[:, :, 3], None
    return np.asarray(im.convert("RGB")), None, None


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an H×W[×C] array, like Pillow's ``exif_transpose``."""
    if orientation == 2:  # mirrored horizontally
        a = a[:, ::-1]
    elif orientation == 3:  # rotated 180
        a = a[::-1, ::-1]
    elif orientation == 4:  # mirrored vertically
        a = a[::-1]
    elif orientation == 5:  # transpose (main diagonal)
        a = a.swapaxes(0, 1)
    elif orientation == 6:  # rotate 90 clockwise
        a = np.rot90(a, -1)
    elif orientation == 7:  # transverse (anti-diagonal)
        a = a.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:  # rotate 90 counter-clockwise
        a = np.rot90(a, 1)
    return a


def _exif_and_orientation(im: Image.Image) -> tuple[bytes | None, int]:
    """Return (exif bytes with orientation reset to 1, orientation to apply)."""
    raw = im.info.get("exif")
    raw_bytes = bytes(raw) if isinstance(raw, (bytes, bytearray)) and raw else None
    try:
        exif = im.getexif()
        orientation = int(exif.get(_ORIENTATION_TAG, 1) or 1)
    except Exception:  # malformed metadata never blocks reading the pixels
        return raw_bytes, 1
    if not 1 <= orientation <= 8:
        orientation = 1
    if orientation != 1 and raw_bytes is not None:
        exif[_ORIENTATION_TAG] = 1
        try:
            raw_bytes = exif.tobytes()
        except Exception:
            raw_bytes = None
    return raw_bytes, orientation


def _bit_depth(im: Image.Image, fmt: str | None, head: bytes) -> int:
    if fmt == "PNG" and len(head) >= 25 and head[12:16] == b"IHDR":
        return int(head[24])
    if fmt == "TIFF":
        with contextlib.suppress(Exception):
            bits = im.tag_v2.get(258)  # type: ignore[attr-defined]
            if bits:
                return int(bits[0] if isinstance(bits, tuple) else bits)
    mode = im.mode
    if mode == "1":
        return 1
    if mode.startswith("I;16"):
        return 16
    if mode in ("I", "F"):
        return 32
    return 8


def _from_pil(im: Image.Image, *, fmt: str | None, source: str | None, head: bytes = b"") -> LoadedImage:
    """Turn a decoded Pillow image into a :class:`LoadedImage` (orientation applied)."""
    icc = im.info.get("icc_profile") or None
    exif, orientation = _exif_and_orientation(im)
    rgb, alpha, icc_out = _pil_to_arrays(im, icc)
    rgb = np.ascontiguousarray(_apply_orientation(rgb, orientation), dtype=np.uint8)
    if alpha is not None:
        alpha = np.ascontiguousarray(_apply_orientation(alpha, orientation), dtype=np.uint8)
    if not rgb.flags.writeable or not rgb.flags.owndata:
        rgb = rgb.copy()
    if alpha is not None and (not alpha.flags.writeable or not alpha.flags.owndata):
        alpha = alpha.copy()
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        format=fmt,
        icc_profile=bytes(icc_out) if icc_out else None,
        exif=exif,
        source=source,
        original_mode=im.mode,
        bit_depth=_bit_depth(im, fmt, head),
    )


# --------------------------------------------------------------------------- arrays


def _array_to_u8(a: np.ndarray) -> np.ndarray:
    """Convert an image array of a supported dtype to ``uint8`` (always a new array)."""
    kind = a.dtype.kind
    if a.dtype == np.uint8:
        return a.copy()
    if kind == "b":
        return a.astype(np.uint8) * np.uint8(255)
    if a.dtype == np.uint16:
        return _scale16(a)
    if kind == "f":
        if not np.isfinite(a).all():
            raise InputError("image array contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            hint = "; divide by 255 first?" if hi <= 255.0 and lo >= 0.0 else ""
            raise InputError(
                f"float image arrays must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}] ({a.dtype}){hint}"
            )
        return np.clip(a.astype(np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8)
        raise InputError(
            f"{a.dtype} image arrays must hold values in 0..255, got {lo}..{hi}; "
            "use uint16 for 16-bit data or float in [0, 1]"
        )
    raise InputError(f"unsupported image array dtype {a.dtype}; expected uint8, uint16 or float in [0, 1]")


def _from_array(a: np.ndarray) -> LoadedImage:
    shape = tuple(a.shape)
    if not (a.ndim == 2 or (a.ndim == 3 and shape[2] in (1, 3, 4))):
        raise InputError(f"expected an H×W, H×W×3 or H×W×4 image array, got {a.dtype} {shape}")
    if a.size == 0:
        raise InputError(f"image array is empty, got shape {shape}")
    u8 = _array_to_u8(np.asarray(a))
    alpha = None
    if u8.ndim == 2 or u8.shape[2] == 1:
        rgb = _gray_to_rgb(u8.reshape(shape[0], shape[1]))
        mode = "L"
    elif u8.shape[2] == 4:
        rgb, alpha = u8[:, :, :3], u8[:, :, 3]
        mode = "RGBA"
    else:
        rgb, mode = u8, "RGB"
    depth = {"b": 1, "f": a.dtype.itemsize * 8}.get(a.dtype.kind, a.dtype.itemsize * 8)
    return LoadedImage(
        rgb=np.ascontiguousarray(rgb),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        format=None,
        source=None,
        original_mode=mode,
        bit_depth=depth,
    )


# --------------------------------------------------------------------------- reading


def _decode(fp: BinaryIO, head: bytes, *, label: str, source: str | None, limit: int) -> LoadedImage:
    sn = sniff(head)
    if sn.kind != "image" or sn.format not in READABLE_FORMATS:
        raise _not_an_image(label, sn, head)
    fmt = sn.format
    with _strict_pillow(limit):
        try:
            im = Image.open(fp, formats=[fmt])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise _too_large(label, None, _bomb_pixels(err), limit) from err
        except MemoryError:
            raise
        except UnidentifiedImageError as err:
            raise CorruptInputError(f"{label} looks like {sn.description} but its header is damaged") from err
        except Exception as err:
            raise CorruptInputError(f"{label} is damaged or truncated ({_short(err)})") from err
        with im:
            width, height = im.size
            if width * height > limit:
                raise _too_large(label, (width, height), None, limit)
            if width <= 0 or height <= 0:
                raise CorruptInputError(f"{label} has an invalid size {width}×{height}")
            try:
                im.load()  # decodes the first frame only
                return _from_pil(im, fmt=fmt, source=source, head=head)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
                raise _too_large(label, None, _bomb_pixels(err), limit) from err
            except (MemoryError, PortraitFxError):
                raise
            except Exception as err:
                raise CorruptInputError(f"{label} is damaged or truncated ({_short(err)})") from err


def read_image(
    src: str | os.PathLike[str] | bytes | bytearray | memoryview | np.ndarray | Image.Image | BinaryIO,
    *,
    max_pixels: int | None = None,
) -> LoadedImage:
    """Read an image safely into an upright H×W×3 ``uint8`` RGB array plus metadata.

    Args:
        src: a path (``str``/``PathLike``), the encoded bytes (``bytes``,
            ``bytearray``, ``memoryview``), a binary file object, a numpy array
            (H×W, H×W×1, H×W×3 or H×W×4; ``uint8``, ``uint16``, ``bool`` or float in
            [0, 1]; always copied) or a PIL image.
        max_pixels: refuse images with more pixels than this, checked from the header
            before decoding. ``None`` means ``$PORTRAITFX_MAX_PIXELS`` if set, else
            50,000,000.

    Returns:
        a :class:`LoadedImage`: ``rgb`` H×W×3 ``uint8``, ``alpha`` H×W ``uint8`` or
        ``None``, the sniffed ``format``, ``icc_profile``, ``exif``, ... Animated
        files (GIF, WebP, APNG) give their first frame.

    Raises:
        InputNotFoundError: the path is missing, a folder, or unreadable.
        UnsupportedFormatError: the content is not an image portraitfx reads
            (the message says what it is, e.g. a PDF document or a video).
        CorruptInputError: the file is empty, damaged or truncated.
        ImageTooLargeError: more pixels than ``max_pixels`` (also decompression bombs).
        InputError: an array of unusable shape, dtype or range.
        ConfigError: ``max_pixels`` / ``$PORTRAITFX_MAX_PIXELS`` is not a positive integer.

    Example:
        >>> import numpy as np
        >>> img = read_image(np.zeros((2, 3), np.uint16))
        >>> img.rgb.shape, img.rgb.dtype.name, img.alpha is None
        ((2, 3, 3), 'uint8', True)
    """
    limit = _resolve_max_pixels(max_pixels)
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, Image.Image):
        width, height = src.size
        if width * height > limit:
            raise _too_large("the PIL image", (width, height), None, limit)
        try:
            src.load()
        except (MemoryError, PortraitFxError):
            raise
        except Exception as err:
            raise CorruptInputError(f"the PIL image is damaged or truncated ({_short(err)})") from err
        return _from_pil(src, fmt=src.format, source=None)
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        return _decode(
            io.BytesIO(data), data[:_SNIFF_BYTES], label="the image data", source=None, limit=limit
        )
    if isinstance(src, (str, os.PathLike)):
        path = check_input_path(src, what="image")
        register_input(path)
        try:
            fp = open(path, "rb")  # noqa: SIM115 - closed by the with block below
        except OSError as err:
            raise InputNotFoundError(f"cannot open image '{path}': {err.strerror or err}") from err
        with fp:
            head = fp.read(_SNIFF_BYTES)
            fp.seek(0)
            return _decode(fp, head, label=f"'{path}'", source=str(path), limit=limit)
    if hasattr(src, "read"):
        data = src.read()
        if not isinstance(data, (bytes, bytearray)):
            raise InputError("the file object must be opened in binary mode")
        data = bytes(data)
        return _decode(
            io.BytesIO(data), data[:_SNIFF_BYTES], label="the image data", source=None, limit=limit
        )
    raise InputError(
        f"cannot read an image from {type(src).__name__}; expected a path, bytes, a numpy array or a PIL image"
    )


def load_image(src: Any, **kwargs: Any) -> np.ndarray:
    """Shortcut for ``read_image(src, **kwargs).rgb``: an H×W×3 ``uint8`` RGB array.

    Example:
        >>> import numpy as np
        >>> load_image(np.ones((2, 2), bool))[0, 0].tolist()
        [255, 255, 255]
    """
    return read_image(src, **kwargs).rgb


def image_from_any(src: Any, **kwargs: Any) -> np.ndarray:
    """Alias of :func:`load_image` for call sites that accept "anything image-like"."""
    return load_image(src, **kwargs)


# --------------------------------------------------------------------------- writing


def _format_for_path(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    fmt = _SAVE_FORMATS.get(suffix)
    if fmt is None:
        raise ConfigError(
            f"cannot save an image as {suffix or 'a file without extension'!r} ('{path}'); "
            f"supported extensions: {', '.join(SAVE_EXTENSIONS)}"
        )
    return fmt


def _normalise_format(format: str) -> str:
    fmt = str(format).upper().lstrip(".")
    fmt = {"JPG": "JPEG", "TIF": "TIFF"}.get(fmt, fmt)
    if fmt not in set(_SAVE_FORMATS.values()):
        raise ConfigError(f"cannot encode images as {format!r}; supported: JPEG, PNG, WEBP, TIFF, BMP")
    return fmt


def _check_image_array(image: Any) -> np.ndarray:
    """Validate an H×W×3 / H×W / H×W×1 / H×W×4 ``uint8`` array; return it as H×W or H×W×C."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected an H×W×3 uint8 RGB array, got {type(image).__name__}")
    shape = tuple(image.shape)
    ok_shape = image.ndim == 2 or (image.ndim == 3 and shape[2] in (1, 3, 4))
    if image.dtype != np.uint8 or not ok_shape or image.size == 0:
        hint = ""
        if image.dtype.kind == "f" and ok_shape:
            hint = "; convert floats in [0, 1] with (img * 255).round().astype(np.uint8)"
        raise InputError(f"expected an H×W×3 uint8 RGB array, got {image.dtype} {shape}{hint}")
    if image.ndim == 3 and shape[2] == 1:
        image = image[:, :, 0]
    return image


def _check_alpha(alpha: Any, hw: tuple[int, int]) -> np.ndarray:
    if not isinstance(alpha, np.ndarray) or alpha.dtype != np.uint8:
        got = f"{alpha.dtype} {tuple(alpha.shape)}" if isinstance(alpha, np.ndarray) else type(alpha).__name__
        raise InputError(f"expected an H×W uint8 alpha array, got {got}")
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[:, :, 0]
    if alpha.shape != hw:
        raise InputError(f"alpha has shape {tuple(alpha.shape)} but the image is {hw[0]}×{hw[1]}")
    return alpha


def _normalise_exif(exif: bytes | Image.Exif) -> bytes:
    """EXIF bytes with the orientation reset to 1 (the pixels written are upright)."""
    if isinstance(exif, Image.Exif):
        parsed = exif
        data = None
    else:
        if not isinstance(exif, (bytes, bytearray, memoryview)):
            raise ConfigError(f"exif must be bytes, got {type(exif).__name__}")
        data = bytes(exif)
        parsed = Image.Exif()
        try:
            parsed.load(data)
        except Exception as err:
            raise ConfigError(f"exif is not valid EXIF data ({_short(err)})") from err
    if parsed.get(_ORIENTATION_TAG, 1) != 1:
        parsed[_ORIENTATION_TAG] = 1
        return parsed.tobytes()
    return data if data is not None else parsed.tobytes()


def _prepare(
    image: np.ndarray | LoadedImage,
    fmt: str,
    *,
    quality: int,
    icc_profile: bytes | None,
    exif: bytes | Image.Exif | None,
    alpha: np.ndarray | None,
) -> tuple[Image.Image, dict[str, Any]]:
    """Validate everything and build the Pillow image plus its save parameters."""
    if isinstance(image, LoadedImage):
        icc_profile = image.icc_profile if icc_profile is None else icc_profile
        exif = image.exif if exif is None else exif
        if alpha is None and image.alpha is not None and fmt in _ALPHA_FORMATS:
            alpha = image.alpha
        image = image.rgb
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ConfigError(f"quality must be an integer from 1 to 100, got {quality!r}")
    arr = _check_image_array(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        if alpha is not None:
            raise ConfigError("got an H×W×4 array and a separate alpha; pass one or the other")
        arr, alpha = arr[:, :, :3], arr[:, :, 3]
    if alpha is not None:
        if fmt not in _ALPHA_FORMATS:
            raise ConfigError(f"{fmt} cannot store transparency; save as .png, .webp or .tif, or drop alpha")
        alpha = _check_alpha(alpha, (arr.shape[0], arr.shape[1]))
    gray = arr.ndim == 2
    if gray and fmt == "WEBP":  # WebP has no gray mode
        arr, gray = _gray_to_rgb(arr), False

    # Image.fromarray infers the mode from the shape: H×W -> L, ×2 -> LA, ×3 -> RGB, ×4 -> RGBA.
    data = arr if alpha is None else np.dstack([arr, alpha])
    pil = Image.fromarray(np.ascontiguousarray(data))

    params: dict[str, Any] = {}
    q = int(quality)
    if fmt == "JPEG":
        params.update(quality=q, optimize=True, subsampling=0 if q >= 90 else 2)
    elif fmt == "WEBP":
        # exact: keep the RGB of fully transparent pixels (libwebp zeroes them by default)
        params.update(quality=q, method=4, lossless=q == 100, exact=True)
    elif fmt == "PNG":
        params.update(compress_level=6)
    elif fmt == "TIFF":
        params.update(compression="tiff_adobe_deflate")
    if icc_profile is not None and fmt != "BMP":
        if not isinstance(icc_profile, (bytes, bytearray, memoryview)):
            raise ConfigError(f"icc_profile must be bytes, got {type(icc_profile).__name__}")
        icc = bytes(icc_profile)
        space = _icc_space(icc)
        if space is None:
            raise ConfigError("icc_profile is not a valid ICC profile (too short)")
        if space == (b"GRAY" if gray else b"RGB "):
            params["icc_profile"] = icc
        elif not (gray and space == b"RGB "):  # an RGB profile is simply not used for gray output
            raise ConfigError(
                f"icc_profile describes a {space.decode('latin-1').strip()} colour space, "
                f"but the image is {'gray' if gray else 'RGB'}"
            )
    if exif is not None and fmt != "BMP" and (not isinstance(exif, (bytes, bytearray)) or len(exif) > 0):
        params["exif"] = _normalise_exif(exif)
    return pil, params


def save_image(
    path: str | os.PathLike[str],
    image: np.ndarray | LoadedImage,
    *,
    quality: int = 95,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    alpha: np.ndarray | None = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write an image atomically; the format comes from the file extension.

    Args:
        path: destination; ``.jpg``/``.jpeg``, ``.png``, ``.webp``, ``.tif``/``.tiff``
            or ``.bmp``. Its folder must exist.
        image: H×W×3 ``uint8`` RGB (also H×W gray or H×W×4 RGBA), or a
            :class:`LoadedImage`, whose ICC profile, EXIF and alpha are then kept
            unless given explicitly.
        quality: 1-100, used by JPEG (4:4:4 chroma from 90 up) and WebP (100 =
            lossless); PNG and TIFF are always lossless.
        icc_profile: ICC profile to embed (not for BMP); must describe RGB (an RGB
            profile is left out when a gray array is saved).
        exif: EXIF bytes to embed (JPEG/PNG/WebP/TIFF); the orientation is reset to 1.
        alpha: H×W ``uint8`` transparency for PNG, WebP or TIFF.
        inputs: extra input paths that must not be overwritten (files read with
            :func:`read_image` are protected automatically).

    Returns:
        the destination path.

    Raises:
        ConfigError: unknown extension, bad quality, alpha for a format without
            transparency, or an unusable ICC profile/EXIF.
        InputError: the array has the wrong dtype or shape.
        OutputError: the folder is missing, the path is an input, or writing failed.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> p = save_image(pathlib.Path(tempfile.mkdtemp()) / "a.jpg", np.zeros((8, 8, 3), np.uint8), quality=80)
        >>> p.suffix
        '.jpg'
    """
    fmt = _format_for_path(path)
    pil, params = _prepare(image, fmt, quality=quality, icc_profile=icc_profile, exif=exif, alpha=alpha)
    with atomic_output(path, inputs=tuple(inputs)) as tmp:
        try:
            try:
                pil.save(tmp, format=fmt, **params)
            except RuntimeError:
                if "exif" not in params:
                    raise
                # libtiff cannot write some camera EXIF (sub-IFDs): keep the picture, drop the EXIF
                params = {k: v for k, v in params.items() if k != "exif"}
                pil.save(tmp, format=fmt, **params)
        except OSError as err:
            raise OutputError(f"cannot write '{path}': {_short(err)}") from err
    return Path(path)


def encode_image(
    image: np.ndarray | LoadedImage,
    format: str = "PNG",
    quality: int = 95,
    *,
    alpha: np.ndarray | None = None,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> bytes:
    """Encode an image in memory (same rules as :func:`save_image`).

    Args:
        image: H×W×3 ``uint8`` RGB (also H×W gray, H×W×4 RGBA or a :class:`LoadedImage`).
        format: ``"PNG"``, ``"JPEG"`` (or ``"JPG"``), ``"WEBP"``, ``"TIFF"`` or ``"BMP"``.
        quality: 1-100 for JPEG/WebP.
        alpha: optional H×W ``uint8`` transparency (PNG/WebP/TIFF).
        icc_profile: optional ICC profile to embed.
        exif: optional EXIF bytes to embed.

    Returns:
        the encoded file content.

    Example:
        >>> import numpy as np
        >>> encode_image(np.zeros((2, 2, 3), np.uint8))[:4]
        b'\\x89PNG'
    """
    fmt = _normalise_format(format)
    pil, params = _prepare(image, fmt, quality=quality, icc_profile=icc_profile, exif=exif, alpha=alpha)
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **params)
    return buf.getvalue()
