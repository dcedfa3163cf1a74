"""Provenance metadata: say in the file itself that portraitfx made or changed a face.

What is written (all of it, for every format that can hold it):

* **PNG**: ``tEXt``/``iTXt`` chunks ``Software`` ("portraitfx 0.1.0"), ``Description``
  (the statement), ``Creation Time``, ``portraitfx`` (a JSON record) and an XMP packet
  (``XML:com.adobe.xmp``), placed before the pixel data; plus EXIF (``eXIf``).
* **JPEG** and **WebP**: EXIF ``ImageDescription`` (the statement), ``Software``,
  ``DateTime`` and ``UserComment`` (the JSON record), and an XMP packet.
* **Videos**: container tags ``comment`` (the JSON record) and ``description``
  (the statement), see :func:`video_metadata`.

The XMP packet carries the IPTC *digital source type* that platforms read to label
synthetic media: ``compositeWithTrainedAlgorithmicMedia`` for edits of a real photo
(face swap, ...) and ``trainedAlgorithmicMedia`` for fully generated portraits.

The JSON record (``portraitfx/provenance/1``) holds ``generator``, ``effect``,
``effect_code``, ``statement``, ``timestamp`` (UTC, ISO 8601), ``digital_source_type``
and ``watermark`` (whether the pixels carry the invisible mark).

Example:
    >>> info = provenance_info("swap", timestamp="2026-01-01T00:00:00Z")
    >>> info.statement
    'AI-generated / edited face (face swap)'
    >>> info.pnginfo["Software"].startswith("portraitfx ")
    True
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from portraitfx._version import __version__
from portraitfx.errors import ConfigError, CorruptInputError, UnsupportedFormatError

__all__ = [
    "GENERATOR",
    "ProvenanceInfo",
    "effect_code",
    "effect_for_code",
    "provenance_info",
    "read_provenance",
    "read_video_provenance",
    "video_metadata",
]

GENERATOR = f"portraitfx {__version__}"
"""The generator string written into every output."""

SCHEMA = "portraitfx/provenance/1"
_PNG_KEYWORD = "portraitfx"
_COMMENT_PREFIX = "portraitfx provenance "
_USER_COMMENT_ASCII = b"ASCII\x00\x00\x00"
_XMP_NS = "urn:portraitfx:provenance:1#"
_IPTC_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_IPTC_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_MAX_XMP = 1 << 20

# name: (watermark payload code, label for the statement, IPTC digital source type)
_EFFECTS: dict[str, tuple[int, str, str]] = {
    "swap": (1, "face swap", "compositeWithTrainedAlgorithmicMedia"),
    "portrait": (2, "AI portrait", "trainedAlgorithmicMedia"),
    "stylize": (3, "stylized face", "compositeSynthetic"),
    "hair": (4, "edited hair", "compositeWithTrainedAlgorithmicMedia"),
    "toon": (5, "cartoon face", "compositeWithTrainedAlgorithmicMedia"),
    "studio": (6, "portrait studio edit", "compositeWithTrainedAlgorithmicMedia"),
}
_ALIASES = {"face_swap": "swap", "faceswap": "swap", "ai_portrait": "portrait", "portraits": "portrait"}
_OTHER_CODE = 15
_EFFECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")

# EXIF tags
_IMAGE_DESCRIPTION = 0x010E
_SOFTWARE = 0x0131
_DATETIME = 0x0132
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286


def _canonical_effect(effect: str) -> str:
    if not isinstance(effect, str) or not _EFFECT_NAME.match(effect):
        raise ConfigError(f"effect must be a short name of letters, digits, '_', '-' or '.', got {effect!r}")
    key = effect.lower()
    return _ALIASES.get(key, key)


def effect_code(effect: str) -> int:
    """The watermark payload for ``effect`` (1-6 for known effects, 15 for others).

    Example:
        >>> effect_code("swap"), effect_code("face_swap"), effect_code("my-effect")
        (1, 1, 15)
    """
    name = _canonical_effect(effect)
    return _EFFECTS[name][0] if name in _EFFECTS else _OTHER_CODE


def effect_for_code(code: int | None) -> str | None:
    """The effect name a watermark payload stands for (``"other"`` for 15, ``None`` if unknown)."""
    for name, (value, _, _) in _EFFECTS.items():
        if value == code:
            return name
    return "other" if code == _OTHER_CODE else None


def _timestamp(value: str | _dt.datetime | None) -> str:
    if value is None:
        value = _dt.datetime.now(_dt.UTC)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return value.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str) and value:
        return value
    raise ConfigError(f"timestamp must be a datetime or an ISO 8601 string, got {value!r}")


@dataclass(frozen=True)
class ProvenanceInfo:
    """Everything an output needs to say it was made by portraitfx.

    Build it with :func:`provenance_info`; pass :attr:`exif` to
    :func:`~portraitfx.io.images.save_image`, or use
    :func:`~portraitfx.provenance.save_marked_image`, which also writes the PNG text
    chunks and XMP.

    Attributes:
        effect: effect name (e.g. ``"swap"``).
        effect_code: the watermark payload for the effect.
        generator: ``"portraitfx <version>"``.
        statement: e.g. ``"AI-generated / edited face (face swap)"``.
        timestamp: UTC time, ISO 8601 (``2026-01-31T12:00:00Z``).
        digital_source_type: IPTC digital source type URI.
        watermark: whether the pixels carry the invisible watermark.
    """

    effect: str
    effect_code: int
    generator: str
    statement: str
    timestamp: str
    digital_source_type: str
    watermark: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The JSON record written into files."""
        return {
            "schema": SCHEMA,
            "generator": self.generator,
            "effect": self.effect,
            "effect_code": self.effect_code,
            "statement": self.statement,
            "timestamp": self.timestamp,
            "digital_source_type": self.digital_source_type,
            "watermark": self.watermark,
        }

    def to_json(self) -> str:
        """:meth:`as_dict` as compact ASCII JSON."""
        return json.dumps(self.as_dict(), separators=(",", ":"), ensure_ascii=True)

    def with_watermark(self, watermark: bool) -> ProvenanceInfo:
        """A copy with :attr:`watermark` set."""
        return replace(self, watermark=bool(watermark))

    # ---------------------------------------------------------------- per format
    def exif_bytes(self, base: bytes | None = None) -> bytes:
        """EXIF bytes with the provenance tags, merged into ``base`` EXIF when given.

        Sets ``ImageDescription``, ``Software``, ``DateTime`` and ``UserComment``
        (the JSON record); other tags of ``base`` are kept.
        """
        from PIL import Image

        exif = Image.Exif()
        if base:
            try:
                exif.load(bytes(base))
            except Exception as err:
                raise ConfigError(f"exif is not valid EXIF data ({err})") from err
        exif[_IMAGE_DESCRIPTION] = self.statement
        exif[_SOFTWARE] = self.generator
        exif[_DATETIME] = self.timestamp.replace("-", ":").replace("T", " ").rstrip("Z")[:19]
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = _USER_COMMENT_ASCII + self.to_json().encode("ascii")
        return exif.tobytes()

    @property
    def exif(self) -> bytes:
        """EXIF bytes with the provenance tags (for ``save_image(..., exif=info.exif)``)."""
        return self.exif_bytes()

    @property
    def pnginfo(self) -> dict[str, str]:
        """PNG text chunks: keyword -> text (written as ``tEXt``, XMP as ``iTXt``)."""
        return {
            "Software": self.generator,
            "Description": self.statement,
            "Creation Time": self.timestamp,
            _PNG_KEYWORD: self.to_json(),
            "XML:com.adobe.xmp": self.xmp.decode("utf-8"),
        }

    @property
    def xmp(self) -> bytes:
        """An XMP packet (UTF-8) with the IPTC digital source type and the record."""
        attrs = {
            "xmp:CreatorTool": self.generator,
            "xmp:ModifyDate": self.timestamp,
            "Iptc4xmpExt:DigitalSourceType": self.digital_source_type,
            "pfx:Generator": self.generator,
            "pfx:Effect": self.effect,
            "pfx:EffectCode": str(self.effect_code),
            "pfx:Statement": self.statement,
            "pfx:Timestamp": self.timestamp,
            "pfx:Watermark": "True" if self.watermark else "False",
        }
        attr_text = "".join(f"\n   {k}={quoteattr(v)}" for k, v in attrs.items())
        text = (
            '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
            ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
            '  <rdf:Description rdf:about=""\n'
            '   xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
            '   xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
            f'   xmlns:Iptc4xmpExt="{_IPTC_NS}"\n'
            f'   xmlns:pfx="{_XMP_NS}"'
            f"{attr_text}>\n"
            "   <dc:description><rdf:Alt>"
            f'<rdf:li xml:lang="x-default">{escape(self.statement)}</rdf:li>'
            "</rdf:Alt></dc:description>\n"
            "  </rdf:Description>\n"
            " </rdf:RDF>\n"
            "</x:xmpmeta>\n"
            '<?xpacket end="w"?>'
        )
        return text.encode("utf-8")

    @property
    def video_metadata(self) -> dict[str, str]:
        """Container tags for a video writer (``comment`` and ``description``)."""
        return {"comment": _COMMENT_PREFIX + self.to_json(), "description": self.statement}


def provenance_info(
    effect: str, *, timestamp: str | _dt.datetime | None = None, watermark: bool = True
) -> ProvenanceInfo:
    """Describe an output of ``effect`` (generator, statement, time, IPTC source type).

    Args:
        effect: the effect's name (``"swap"``, ``"portrait"``, ... or any short name).
        timestamp: when it was made; default now (UTC).
        watermark: whether the pixels carry the invisible watermark.

    Raises:
        ConfigError: ``effect`` is not a short plain name.

    Example:
        >>> provenance_info("portrait", timestamp="2026-01-01T00:00:00Z").digital_source_type
        'http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia'
    """
    name = _canonical_effect(effect)
    code, label, source_type = _EFFECTS.get(name, (_OTHER_CODE, name, "compositeWithTrainedAlgorithmicMedia"))
    return ProvenanceInfo(
        effect=name,
        effect_code=code,
        generator=GENERATOR,
        statement=f"AI-generated / edited face ({label})",
        timestamp=_timestamp(timestamp),
        digital_source_type=_IPTC_TYPES + source_type,
        watermark=bool(watermark),
    )


def video_metadata(effect: str, *, watermark: bool = True) -> dict[str, str]:
    """Container tags marking a video as an output of ``effect``.

    Pass them to the writer (PyAV: ``container.metadata.update(...)`` before
    writing). ``comment`` holds the JSON record (MP4, MOV, MKV and WebM keep it),
    ``description`` the statement.

    Example:
        >>> sorted(video_metadata("swap"))
        ['comment', 'description']
    """
    return provenance_info(effect, watermark=watermark).video_metadata


# --------------------------------------------------------------------------- writing into encoded files


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_text_chunk(keyword: str, text: str) -> bytes:
    key = keyword.encode("latin-1")
    try:
        return _png_chunk(b"tEXt", key + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:  # iTXt: uncompressed UTF-8, no language tag
        return _png_chunk(b"iTXt", key + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def add_png_text(data: bytes, text: dict[str, str]) -> bytes:
    """Insert text chunks into encoded PNG ``data``, right after ``IHDR``."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    chunks = b"".join(
        _png_chunk(b"iTXt", k.encode("latin-1") + b"\x00\x00\x00\x00\x00" + v.encode("utf-8"))
        if k.startswith("XML:")
        else _png_text_chunk(k, v)
        for k, v in text.items()
    )
    return data[:end] + chunks + data[end:]


def add_jpeg_xmp(data: bytes, xmp: bytes) -> bytes:
    """Insert an XMP ``APP1`` segment into encoded JPEG ``data`` after its APPn segments."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream")
    payload = _XMP_JPEG_HEADER + xmp
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("XMP packet too large for one JPEG segment")
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:pos] + segment + data[pos:]


def add_webp_xmp(data: bytes, xmp: bytes) -> bytes:
    """Append an ``XMP`` chunk to an extended-format (``VP8X``) WebP; others are returned as is."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP stream")
    if data[12:16] != b"VP8X":
        return data  # simple format: no room for XMP without rewriting the header
    chunk = b"XMP " + struct.pack("<I", len(xmp)) + xmp + (b"\x00" if len(xmp) % 2 else b"")
    flags = data[20] | 0x04
    out = bytearray(data[:20] + bytes([flags]) + data[21:] + chunk)
    out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


def embed_metadata(data: bytes, fmt: str, info: ProvenanceInfo) -> bytes:
    """Add the PNG text chunks / XMP of ``info`` to an encoded image (EXIF is set at encoding)."""
    if fmt == "PNG":
        return add_png_text(data, info.pnginfo)
    if fmt == "JPEG":
        return add_jpeg_xmp(data, info.xmp)
    if fmt == "WEBP":
        return add_webp_xmp(data, info.xmp)
    return data


# --------------------------------------------------------------------------- reading


def _parse_record(text: str | bytes | None) -> dict[str, Any] | None:
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip().strip("\x00")
    if text.startswith(_COMMENT_PREFIX):
        text = text[len(_COMMENT_PREFIX) :]
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if isinstance(record, dict) and record.get("schema") == SCHEMA:
        return record
    return None


def _parse_xmp(xmp: bytes | str | None) -> dict[str, Any] | None:
    """The portraitfx fields of an XMP packet (attribute or element form)."""
    if not xmp:
        return None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if len(xmp) > _MAX_XMP or _XMP_NS.encode() not in xmp:
        return None
    import xml.etree.ElementTree as ET

    start, end = xmp.find(b"<x:xmpmeta"), xmp.rfind(b"</x:xmpmeta>")
    if start < 0 or end < 0 or b"<!DOCTYPE" in xmp or b"<!ENTITY" in xmp:
        return None
    try:
        root = ET.fromstring(xmp[start : end + len(b"</x:xmpmeta>")])
    except ET.ParseError:
        return None
    found: dict[str, str] = {}
    for node in root.iter():
        for key, value in node.attrib.items():
            if key.startswith("{" + _XMP_NS) or key == "{" + _IPTC_NS + "}DigitalSourceType":
                found[key.rsplit("}", 1)[1]] = value
        if node.tag.startswith("{" + _XMP_NS) and node.text and node.text.strip():
            found[node.tag.rsplit("}", 1)[1]] = node.text.strip()
    if "Effect" not in found and "Generator" not in found:
        return None
    code = found.get("EffectCode", "")
    return {
        "schema": SCHEMA,
        "generator": found.get("Generator"),
        "effect": found.get("Effect"),
        "effect_code": int(code) if code.isdigit() else None,
        "statement": found.get("Statement"),
        "timestamp": found.get("Timestamp"),
        "digital_source_type": found.get("DigitalSourceType"),
        "watermark": found.get("Watermark", "").lower() == "true",
    }


def _merge(record: dict[str, Any] | None, where: str, result: dict[str, Any]) -> None:
    if not record:
        return
    for key, value in record.items():
        if value is not None and key not in result:
            result[key] = value
    result.setdefault("found_in", []).append(where)


def _image_provenance(path: Path) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    result: dict[str, Any] = {}
    try:
        with Image.open(path) as im:  # headers only: no pixel is decoded
            fmt = im.format
            info = dict(im.info)
            exif = im.getexif()
            comment = exif.get_ifd(_EXIF_IFD).get(_USER_COMMENT)
            description = exif.get(_IMAGE_DESCRIPTION)
            software = exif.get(_SOFTWARE)
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise UnsupportedFormatError(f"cannot read the metadata of '{path}': {err}") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as err:
        raise CorruptInputError(f"cannot read the metadata of '{path}': {err}") from None
    if fmt == "PNG":
        _merge(_parse_record(info.get(_PNG_KEYWORD)), "png-text", result)
    if isinstance(comment, bytes) and comment.startswith(_USER_COMMENT_ASCII):
        comment = comment[len(_USER_COMMENT_ASCII) :]
    _merge(_parse_record(comment), "exif", result)
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    _merge(_parse_xmp(xmp), "xmp", result)
    if not result and isinstance(software, str) and software.startswith("portraitfx"):
        # the JSON record was stripped but the EXIF text tags survived
        result = {"generator": software.strip(), "statement": description, "found_in": ["exif"]}
    return result


def read_video_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The portraitfx record in a video's container (or stream) tags; ``{}`` if none."""
    import av

    from portraitfx.errors import VideoError

    result: dict[str, Any] = {}
    try:
        with av.open(str(path), "r", metadata_errors="replace") as container:
            tag_sets = [container.metadata] + [s.metadata for s in container.streams]
            for tags in tag_sets:
                for key, value in tags.items():
                    if key.lower() == "comment":
                        _merge(_parse_record(value), "container-tags", result)
                if result:
                    break
    except av.error.FFmpegError as err:
        raise VideoError(f"cannot read the tags of '{path}': {err}") from None
    if result:
        result["found_in"] = sorted(set(result["found_in"]))
    return result


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the portraitfx provenance record of an image or video file.

    Args:
        path: a PNG, JPEG, WebP (or other image) or a video file.

    Returns:
        ``{}`` when there is none; else the record (``generator``, ``effect``,
        ``effect_code``, ``statement``, ``timestamp``, ``digital_source_type``,
        ``watermark``) plus ``found_in``: where it was found (``"png-text"``,
        ``"exif"``, ``"xmp"``, ``"container-tags"``).

    Raises:
        InputNotFoundError: the file does not exist.
        UnsupportedFormatError, CorruptInputError: it is not a readable image/video.
    """
    from portraitfx.io.images import sniff
    from portraitfx.io.paths import check_input_path

    p = check_input_path(path, what="file")
    with open(p, "rb") as fh:
        head = fh.read(1024)
    kind = sniff(head)
    if kind.kind in ("video", "audio"):  # audio: an Ogg/MP4 may still hold video
        return read_video_provenance(p)
    if kind.kind != "image":
        raise UnsupportedFormatError(f"'{p}' is {kind.description}, not an image or a video")
    return _image_provenance(p)
