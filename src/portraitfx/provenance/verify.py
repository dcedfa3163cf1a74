"""Check a file for portraitfx provenance: the watermark and the metadata.

:func:`verify_file` backs ``portraitfx verify``. Images are decoded with
:func:`~portraitfx.io.images.read_image`; for videos a few frames spread over the
clip are decoded and their evidence combined (see
:func:`~portraitfx.provenance.watermark.detect_watermark_frames`).

Example:
    >>> report = verify_file("swapped.jpg")  # doctest: +SKIP
    >>> report.line()  # doctest: +SKIP
    "portraitfx mark found in 'swapped.jpg' (score 52.3; effect: swap; metadata: yes)"
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portraitfx.errors import ConfigError
from portraitfx.provenance.metadata import effect_for_code, read_provenance, read_video_provenance
from portraitfx.provenance.watermark import WatermarkResult, detect_watermark, detect_watermark_frames

__all__ = ["DEFAULT_VIDEO_FRAMES", "VerifyReport", "verify_file"]

DEFAULT_VIDEO_FRAMES = 8
"""Frames sampled from a video by default."""


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_file` found in one file.

    Attributes:
        path: the file.
        kind: ``"image"`` or ``"video"``.
        watermark: the watermark detection result.
        metadata: the provenance record from the file's metadata (``{}`` if none).
        size: ``(width, height)`` of the pictures checked.
    """

    path: Path
    kind: str
    watermark: WatermarkResult
    metadata: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)

    @property
    def found(self) -> bool:
        """The watermark or portraitfx provenance metadata was found."""
        return self.watermark.found or bool(self.metadata)

    @property
    def effect(self) -> str | None:
        """The effect named by the metadata, else by the watermark's payload."""
        named = self.metadata.get("effect")
        if isinstance(named, str) and named:
            return named
        return effect_for_code(self.watermark.payload) if self.watermark.found else None

    def line(self) -> str:
        """A one-line human report."""
        wm = self.watermark
        score = f"score {wm.score:.1f}"
        if self.kind == "video":
            score += f" over {wm.frames} frame{'s' if wm.frames != 1 else ''}"
        effect = self.effect or "unknown"
        if wm.found:
            metadata = "yes" if self.metadata else "no"
            return f"portraitfx mark found in '{self.path}' ({score}; effect: {effect}; metadata: {metadata})"
        if self.metadata:
            return (
                f"portraitfx metadata found in '{self.path}' but no watermark "
                f"({score}; effect: {effect}; generator: {self.metadata.get('generator', 'portraitfx')})"
            )
        if wm.reason:
            return f"no portraitfx mark in '{self.path}' ({wm.reason}: {self.size[0]}×{self.size[1]})"
        return f"no portraitfx mark in '{self.path}' ({score})"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        wm = self.watermark
        return {
            "file": str(self.path),
            "kind": self.kind,
            "found": self.found,
            "effect": self.effect,
            "width": self.size[0],
            "height": self.size[1],
            "watermark": {
                "found": wm.found,
                "score": round(wm.score, 3),
                "threshold": wm.threshold,
                "payload": wm.payload,
                "effect": effect_for_code(wm.payload) if wm.found else None,
                "grid": wm.grid,
                "frames": wm.frames,
                "false_positive_bound": wm.false_positive_bound if wm.found else None,
                "reason": wm.reason,
            },
            "metadata": dict(self.metadata) or None,
        }


def _sample_frames(path: Path, count: int) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Up to ``count`` frames spread over the clip (seeking for long clips)."""
    from portraitfx.io.video import VideoReader, probe_video

    info = probe_video(path)
    total = info.frame_count
    frames: list[np.ndarray] = []
    if total and total <= 8 * count:
        with VideoReader(path, step=max(1, total // count)) as reader:
            for frame in reader:
                frames.append(frame.image)
                if len(frames) >= count:
                    break
    else:
        for i in range(count):
            start = info.duration * (i + 0.5) / count
            with VideoReader(path, start=start) as reader:
                first = next(iter(reader), None)
            if first is not None:
                frames.append(first.image)
    return frames, (info.width, info.height)


def verify_file(path: str | os.PathLike[str], *, frames: int = DEFAULT_VIDEO_FRAMES) -> VerifyReport:
    """Look for the portraitfx watermark and provenance metadata in an image or video.

    Args:
        path: image (JPEG, PNG, WebP, ...) or video (MP4, MOV, MKV, WebM, ...).
        frames: how many video frames to sample.

    Returns:
        A :class:`VerifyReport`.

    Raises:
        InputNotFoundError, UnsupportedFormatError, CorruptInputError, VideoError:
            the file cannot be read.
        ConfigError: ``frames`` is not positive.
    """
    from portraitfx.io.images import read_image, sniff
    from portraitfx.io.paths import check_input_path

    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ConfigError(f"frames must be a positive integer, got {frames!r}")
    p = check_input_path(path, what="file")
    with open(p, "rb") as fh:
        head = fh.read(1024)
    if sniff(head).kind in ("video", "audio"):  # audio: an Ogg/MP4 may still hold video
        pictures, size = _sample_frames(p, frames)
        result = detect_watermark_frames(pictures)
        return VerifyReport(p, "video", result, read_video_provenance(p), size)
    loaded = read_image(p)
    result = detect_watermark(loaded.rgb)
    return VerifyReport(p, "image", result, read_provenance(p), loaded.size)
