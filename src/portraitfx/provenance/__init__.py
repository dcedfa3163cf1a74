"""Provenance for identity-changing effects: an invisible watermark and file metadata.

Outputs of effects that change who a face looks like (face swap, AI portraits) are
marked **by default**, twice:

* an invisible watermark in the pixels (:func:`mark_image`), which survives JPEG
  re-compression and resizing and is found by ``portraitfx verify``;
* metadata in the file (:func:`save_marked_image`, :func:`video_metadata`): the
  generator, the effect, the statement "AI-generated / edited face (...)", a
  timestamp and the IPTC digital source type.

For effect authors:

.. code-block:: python

    from portraitfx.provenance import mark_image, save_marked_image, video_metadata

    out = mark_image(out, "swap", provenance=options.provenance)      # every frame
    save_marked_image("out.jpg", out, "swap", provenance=options.provenance)

Opting out must be explicit: effects take an option ``provenance: bool = True``
and pass it on; only ``provenance=False`` (a real ``bool``) turns marking off,
anything else is refused. Do not add other ways to switch it off.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> frame = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    >>> found = detect_watermark(mark_image(frame, "swap"))
    >>> found.found, effect_for_code(found.payload)
    (True, 'swap')
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from portraitfx.errors import ConfigError, OutputError
from portraitfx.provenance.metadata import (
    GENERATOR,
    ProvenanceInfo,
    effect_code,
    effect_for_code,
    embed_metadata,
    provenance_info,
    read_provenance,
    read_video_provenance,
    video_metadata,
)
from portraitfx.provenance.watermark import (
    DEFAULT_STRENGTH,
    MIN_SIDE,
    THRESHOLD,
    WatermarkResult,
    WatermarkSkippedWarning,
    detect_watermark,
    detect_watermark_frames,
    embed_watermark,
    embed_watermark_i420,
    false_positive_bound,
)

__all__ = [
    "DEFAULT_STRENGTH",
    "GENERATOR",
    "MIN_SIDE",
    "THRESHOLD",
    "ProvenanceInfo",
    "WatermarkResult",
    "WatermarkSkippedWarning",
    "detect_watermark",
    "detect_watermark_frames",
    "effect_code",
    "effect_for_code",
    "embed_watermark",
    "embed_watermark_i420",
    "false_positive_bound",
    "mark_image",
    "mark_video_frame",
    "provenance_info",
    "read_provenance",
    "read_video_provenance",
    "save_marked_image",
    "video_metadata",
]

_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
}


def _enabled(provenance: object) -> bool:
    if isinstance(provenance, (bool, np.bool_)):
        return bool(provenance)
    raise ConfigError(
        f"provenance must be True or False, got {provenance!r}; outputs are marked unless "
        "provenance=False is passed explicitly"
    )


def mark_image(
    image: np.ndarray, effect: str, *, provenance: bool = True, strength: float = DEFAULT_STRENGTH
) -> np.ndarray:
    """Return ``image`` with the invisible watermark of ``effect`` (its code is the payload).

    Args:
        image: H×W×3 ``uint8`` RGB (also gray or RGBA), e.g. an effect's output frame.
        effect: the effect's name (``"swap"``, ``"portrait"``, ...).
        provenance: ``False`` returns ``image`` untouched (the explicit opt-out).
        strength: see :func:`embed_watermark`.

    Returns:
        A marked copy (or ``image`` itself when ``provenance=False``). Pictures under
        128 px on the short side are returned unmarked with a
        :class:`WatermarkSkippedWarning`.

    Raises:
        ConfigError: ``provenance`` is not a bool, or a bad effect name / strength.
        InputError: ``image`` is not a ``uint8`` image array.
    """
    if not _enabled(provenance):
        return image
    return embed_watermark(image, effect_code(effect), strength=strength)


def mark_video_frame(
    image: np.ndarray,
    effect: str,
    *,
    strength: float = DEFAULT_STRENGTH,
    base: Any = None,
    changed: Sequence[tuple[int, int, int, int]] | None = None,
) -> Any:
    """:func:`mark_image` for a frame on its way to the video encoder.

    Returns an :class:`~portraitfx.io.video.I420Image` (what the encoder takes, so it
    does no colour conversion of its own) carrying the same mark on its Y plane, at
    about half the cost of marking RGB; frames of odd size come back as marked RGB.

    Args:
        base: the decoded picture ``image`` was made from (an ``I420Image``, e.g.
            :attr:`VideoFrame.i420 <portraitfx.io.video.VideoFrame.i420>`), with
            ``changed``, the ``(x0, y0, x1, y1)`` boxes outside of which ``image`` is
            still that picture: only the boxes are converted (the rest keeps its
            decoded values, with no colour round trip).
    """
    from portraitfx.io.video import I420Image
    from portraitfx.provenance.watermark import _check_image

    arr = _check_image(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] % 2 or arr.shape[1] % 2:
        return mark_image(arr, effect, strength=strength)
    if isinstance(base, I420Image) and changed is not None and base.size == (arr.shape[1], arr.shape[0]):
        frame = base.updated(arr, changed)
    else:
        frame = I420Image.from_rgb(arr)
    embed_watermark_i420(frame.data, effect_code(effect), strength=strength)
    return frame


def _ensure_marked(pixels: np.ndarray, effect: str) -> tuple[np.ndarray, bool]:
    """Mark ``pixels`` unless they already carry a mark; say whether the result is marked."""
    if min(pixels.shape[:2]) < MIN_SIDE:
        height, width = pixels.shape[:2]
        warnings.warn(
            f"image is {width}×{height}; pictures under {MIN_SIDE} px on the short side are "
            "too small to carry the portraitfx watermark (the metadata is still written)",
            WatermarkSkippedWarning,
            stacklevel=3,
        )
        return pixels, False
    if detect_watermark(pixels).found:  # e.g. frames already marked by the effect
        return pixels, True
    return embed_watermark(pixels, effect_code(effect)), True


def save_marked_image(
    path: str | os.PathLike[str],
    image: Any,
    effect: str,
    *,
    provenance: bool = True,
    quality: int = 95,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    alpha: np.ndarray | None = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
    timestamp: Any = None,
) -> Path:
    """Write an effect's output atomically, watermarked and with provenance metadata.

    The pixels get the watermark unless they already carry one (so calling
    :func:`mark_image` first is fine). PNG gets text chunks + XMP + EXIF, JPEG and
    WebP get EXIF + XMP (see :mod:`portraitfx.provenance.metadata`).

    Args:
        path: ``.png``, ``.jpg``/``.jpeg`` or ``.webp``.
        image: H×W×3 ``uint8`` RGB (or RGBA / gray), or a
            :class:`~portraitfx.io.images.LoadedImage` (its ICC profile, EXIF and
            alpha are kept unless given).
        effect: the effect's name.
        provenance: ``False`` writes the image as is with
            :func:`~portraitfx.io.images.save_image` (no mark, no metadata).
        quality, icc_profile, exif, alpha, inputs: as for
            :func:`~portraitfx.io.images.save_image`; ``exif`` is merged with the
            provenance tags.
        timestamp: creation time for the metadata (default now, UTC).

    Returns:
        The destination path.

    Raises:
        ConfigError: another extension (``.bmp``, ``.tif``), bad options.
        InputError: the array has the wrong dtype or shape.
        OutputError: the folder is missing, the path is an input, or writing failed.
    """
    from portraitfx.io.images import LoadedImage, encode_image, save_image
    from portraitfx.io.paths import atomic_output

    if not _enabled(provenance):
        return save_image(
            path, image, quality=quality, icc_profile=icc_profile, exif=exif, alpha=alpha, inputs=inputs
        )
    suffix = Path(path).suffix.lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None:
        raise ConfigError(
            f"cannot save '{path}' with provenance metadata: use .png, .jpg or .webp "
            f"(got {suffix or 'no extension'!r})"
        )
    if isinstance(image, LoadedImage):
        icc_profile = image.icc_profile if icc_profile is None else icc_profile
        exif = image.exif if exif is None else exif
        if alpha is None and image.alpha is not None and fmt in ("PNG", "WEBP"):
            alpha = image.alpha
        image = image.rgb
    from portraitfx.provenance.watermark import _check_image

    pixels, marked = _ensure_marked(_check_image(image), effect)
    info = provenance_info(effect, timestamp=timestamp, watermark=marked)
    data = encode_image(
        pixels, fmt, quality, alpha=alpha, icc_profile=icc_profile, exif=info.exif_bytes(exif)
    )
    data = embed_metadata(data, fmt, info)
    with atomic_output(path, inputs=tuple(inputs)) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as err:
            raise OutputError(f"cannot write '{path}': {err.strerror or err}") from err
    return Path(path)
