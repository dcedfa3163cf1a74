"""Run face analysis over a file: a still image or a video.

Images go through :class:`~portraitfx.face.analyze.FaceAnalyzer` (detector +
per-face mesh); videos through :class:`~portraitfx.face.track.FaceTracker`
(MediaPipe mesh tracking, stable ids, One-Euro smoothing). Results are written as
JSON and/or an annotated overlay (PNG/JPEG for images, a video with the source's
audio for videos).

Example:
    >>> from portraitfx.runtime.analyze import analyze_file
    >>> report = analyze_file("clip.mp4", json_path="faces.json", overlay_path="faces.mp4")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from portraitfx._version import __version__
from portraitfx.errors import ConfigError, OutputError, TruncatedVideoError
from portraitfx.face.analyze import AnalyzeOptions, FaceAnalyzer
from portraitfx.io.paths import atomic_output, check_input_path, check_output_path

__all__ = ["AnalyzeReport", "analyze_file", "media_kind"]

MediaKind = Literal["image", "video"]


def media_kind(path: str | os.PathLike[str]) -> MediaKind:
    """Tell whether ``path`` holds a still image or a video, from its content."""
    from portraitfx.io.images import sniff

    p = check_input_path(path)
    with open(p, "rb") as fh:
        head = fh.read(4096)
    kind = sniff(head).kind
    return "video" if kind in ("video", "audio") else "image"


@dataclass
class AnalyzeReport:
    """What :func:`analyze_file` did.

    Attributes:
        kind: ``"image"`` or ``"video"``.
        frames: frames analysed (1 for an image).
        faces: faces found in the image, or distinct track ids in the video.
        seconds: wall time spent.
        media_seconds: duration of the video (0 for images).
        outputs: files written.
        data: the JSON document (also written when ``json_path`` is given).
        truncated: the video ended early at damaged data.
    """

    kind: MediaKind
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    media_seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def analyze_file(
    source: str | os.PathLike[str],
    *,
    json_path: str | os.PathLike[str] | None = None,
    overlay_path: str | os.PathLike[str] | None = None,
    options: AnalyzeOptions | None = None,
    landmarks: bool | None = None,
    progress: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
) -> AnalyzeReport:
    """Analyse faces in an image or video file and write the requested outputs.

    Args:
        source: image or video path.
        json_path: where to write the JSON result (optional).
        overlay_path: where to write the annotated image or video (optional).
        options: analysis options (``max_faces`` etc.).
        landmarks: include the 478-point meshes in the JSON (default: yes for
            images, no for videos, where they would be large).
        progress: show a progress bar for videos.
        on_frame: called as ``on_frame(done, total)`` after each video frame.

    Returns:
        An :class:`AnalyzeReport`.
    """
    src = check_input_path(source)
    # Validate outputs before any work, so a typo fails in a second, not after a long video.
    outs = [Path(p) for p in (json_path, overlay_path) if p is not None]
    for out in outs:
        check_output_path(out, inputs=(src,))
    if len(outs) == 2 and outs[0].resolve() == outs[1].resolve():
        raise OutputError(f"--json and --overlay both name '{outs[0]}'; give two different files")
    options = options or AnalyzeOptions()
    kind = media_kind(src)
    if kind == "video" and options.embed:
        raise ConfigError(
            "identity embeddings (--embed) are computed for images only; analyse a frame as an image"
        )
    started = time.perf_counter()
    if kind == "image":
        report = _analyze_image(src, overlay_path, options, True if landmarks is None else landmarks)
    else:
        report = _analyze_video(
            src, overlay_path, options, bool(landmarks), progress=progress, on_frame=on_frame
        )
    report.seconds = time.perf_counter() - started
    if json_path is not None:
        _write_json(Path(json_path), report.data)
        report.outputs.append(Path(json_path))
    if report.truncated:
        written = ", ".join(f"'{p}'" for p in report.outputs) or "nothing"
        err = TruncatedVideoError(
            f"'{src}' is damaged or truncated: analysed the {report.frames} frames before the damage "
            f"(wrote {written})",
            frames_decoded=report.frames,
            output=str(overlay_path) if overlay_path is not None else None,
        )
        err.report = report  # type: ignore[attr-defined]  # what was analysed, for callers that print it
        raise err
    return report


def _analyze_image(src: Path, overlay: Any, options: AnalyzeOptions, landmarks: bool) -> AnalyzeReport:
    from portraitfx.face.draw import draw_faces
    from portraitfx.io.images import read_image, save_image

    loaded = read_image(src)
    with FaceAnalyzer(options) as analyzer:
        result = analyzer.run(loaded.rgb)
    data = {
        "portraitfx": __version__,
        "source": str(src),
        "kind": "image",
        **result.to_dict(landmarks=landmarks),
    }
    report = AnalyzeReport("image", frames=1, faces=len(result.faces), data=data)
    if overlay is not None:
        save_image(
            overlay, draw_faces(loaded.rgb, result.faces), icc_profile=loaded.icc_profile, inputs=(src,)
        )
        report.outputs.append(Path(overlay))
    return report


def _analyze_video(
    src: Path,
    overlay: Any,
    options: AnalyzeOptions,
    landmarks: bool,
    *,
    progress: bool,
    on_frame: Callable[[int, int], None] | None,
) -> AnalyzeReport:
    from portraitfx.face.draw import draw_faces
    from portraitfx.face.track import FaceTracker
    from portraitfx.io.video import VideoReader, VideoWriter, prefetch_frames

    frames: list[dict[str, Any]] = []
    ids: set[int] = set()
    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(VideoReader(src))
        tracker = stack.enter_context(
            FaceTracker(
                options.max_faces,
                min_score=options.min_score,
                min_face_size=options.min_face_size,
                # "auto" in video is the full-range model: new faces can be far away
                detector="full" if options.detector == "auto" else options.detector,
            )
        )
        info, total = reader.info, reader.info.frame_count
        # entered last, so it is finalised (or removed, on an error) before the reader closes
        writer = stack.enter_context(VideoWriter(overlay, fps=info.fps, audio_from=src)) if overlay else None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = stack.enter_context(
                tqdm(total=total or None, unit="frame", desc=f"analyse {src.name}", leave=False)
            )
        for frame in prefetch_frames(reader):  # decoding overlaps tracking
            faces = tracker.update(frame.image, frame.time)
            ids.update(f.track_id for f in faces if f.track_id is not None)
            frames.append(
                {
                    "index": frame.index,
                    "time": round(frame.time, 6),
                    "faces": [f.to_dict(landmarks=landmarks) for f in faces],
                }
            )
            if writer is not None:
                writer.write(draw_faces(frame.image, faces), time=frame.time)
            if bar is not None:
                bar.update(1)
            if on_frame is not None:
                on_frame(len(frames), total)
        truncated = reader.truncated
    data = {
        "portraitfx": __version__,
        "source": str(src),
        "kind": "video",
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "frame_count": len(frames),
        "tracks": sorted(ids),
        "frames": frames,
    }
    report = AnalyzeReport(
        "video", frames=len(frames), faces=len(ids), media_seconds=info.duration, data=data
    )
    if overlay is not None:
        report.outputs.append(Path(overlay))
    if truncated:
        data["truncated"] = report.truncated = True
    return report
