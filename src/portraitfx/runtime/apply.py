"""Run an effect over a file or a folder: images, videos (audio kept), folders of both.

Images: analyse (still mode) -> effect -> save (ICC profile kept).
Videos: track faces (stable ids, smoothed landmarks) -> effect with per-video
state -> encode with the source's audio.
Folders: every image and video inside (not recursive), written under the output
folder with the same names; outputs that already exist are skipped, so an
interrupted run resumes where it stopped.

Example:
    >>> effect = create_effect("stylize", style="pencil")                       # doctest: +SKIP
    >>> apply_to_file(effect, "clip.mp4", "clip_pencil.mp4")                    # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from portraitfx.effects.base import Effect, EffectState
from portraitfx.errors import InputError, NoFaceError, OutputError, PortraitFxError
from portraitfx.face.analyze import AnalyzeOptions, FaceAnalyzer, require_face
from portraitfx.io.paths import atomic_output, check_input_path, check_output_path

__all__ = ["ApplyReport", "apply_to_file", "apply_to_folder", "apply_to_path"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


@dataclass
class ApplyReport:
    """What was done.

    Attributes:
        outputs: files written.
        skipped: outputs that existed already (folders) or inputs with no face.
        failed: ``(input, message)`` for inputs that could not be processed (folders).
        frames: frames processed (images count 1).
        faces: faces processed (summed over frames).
        seconds: wall time.
        media_seconds: seconds of video processed.
        warnings: things the user should know (e.g. an image with no face, copied as is).
    """

    outputs: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    media_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def _is_video(path: Path) -> bool:
    from portraitfx.runtime.analyze import media_kind

    return media_kind(path) == "video"


def apply_to_file(
    effect: Effect,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    options: AnalyzeOptions | None = None,
    progress: bool = False,
    require_faces: bool = True,
) -> ApplyReport:
    """Apply ``effect`` to one image or video.

    Args:
        effect: any registered effect.
        src: input image or video.
        dst: output path; for a video its suffix picks the container.
        options: face analysis options (``max_faces``, ...).
        progress: show a progress bar for videos.
        require_faces: raise :class:`NoFaceError` for an image (or a whole video)
            with no face instead of writing an unchanged copy.
    """
    source = check_input_path(src)
    check_output_path(dst, inputs=(source,))
    options = options or AnalyzeOptions()
    started = time.perf_counter()
    report = ApplyReport()
    if _is_video(source):
        _apply_video(effect, source, Path(dst), options, progress, require_faces, report)
    else:
        _apply_image(effect, source, Path(dst), options, require_faces, report)
    report.seconds = time.perf_counter() - started
    return report


def _apply_image(
    effect: Effect, src: Path, dst: Path, options: AnalyzeOptions, require_faces: bool, report: ApplyReport
) -> None:
    from portraitfx.io.images import read_image, save_image

    loaded = read_image(src)
    with FaceAnalyzer(options) as analyzer:
        result = analyzer.run(loaded.rgb)
    faces = require_face(result, f"'{src}'") if require_faces else result.faces
    out = effect.apply(loaded.rgb, faces, None)
    # an unchanged picture (no face) must not be labelled as generated
    marked = getattr(effect, "provenance_effect", None) if faces else None
    if marked:
        from portraitfx.provenance import save_marked_image

        save_marked_image(dst, out, marked, icc_profile=loaded.icc_profile, inputs=(src,))
    else:
        save_image(dst, out, icc_profile=loaded.icc_profile, inputs=(src,))
    report.outputs.append(dst)
    report.frames += 1
    report.faces += len(faces)
    if not faces:
        report.warnings.append(f"no face found in '{src}'; the output is a copy of the input")


def _apply_video(
    effect: Effect,
    src: Path,
    dst: Path,
    options: AnalyzeOptions,
    progress: bool,
    require_faces: bool,
    report: ApplyReport,
) -> None:
    from portraitfx.face.track import FaceTracker
    from portraitfx.io.video import process_video

    state = EffectState()
    smooth = bool(getattr(effect, "smooth_landmarks", True))
    with FaceTracker(
        options.max_faces, smooth=smooth, min_score=options.min_score, min_face_size=options.min_face_size
    ) as tracker:

        def step(frame) -> object:
            faces = tracker.update(frame.image, frame.time)
            state.frame_index = frame.index
            report.faces += len(faces)
            return effect.apply(frame.image, faces, state) if faces else frame.image

        # into a temporary file first: a video with no face must not replace an existing output
        with atomic_output(dst, inputs=(src,)) as tmp:
            marked = getattr(effect, "provenance_effect", None)
            metadata = None
            if marked:
                from portraitfx.provenance import video_metadata

                metadata = video_metadata(marked)
            result = process_video(src, tmp, step, progress=progress, metadata=metadata)
            if require_faces and report.faces == 0:
                raise NoFaceError(f"no face found in any frame of '{src}'")
    report.frames += result.frames
    report.media_seconds += result.seconds_of_video
    report.outputs.append(dst)


def apply_to_folder(
    effect: Effect,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    options: AnalyzeOptions | None = None,
    progress: bool = False,
    suffix: str | None = None,
    on_item: Callable[[Path, Path | None, str | None], None] | None = None,
    require_faces: bool = True,
) -> ApplyReport:
    """Apply ``effect`` to every image and video directly inside folder ``src``.

    Outputs keep their names (``suffix`` replaces image extensions, e.g. ``".png"``)
    under ``dst`` (created if missing). Existing outputs are skipped, so re-running
    resumes. A file that fails (no face, damaged) is reported and the rest go on.
    """
    folder = Path(src)
    if not folder.is_dir():
        raise InputError(f"'{folder}' is not a folder")
    out_dir = Path(dst)
    if out_dir.resolve() == folder.resolve():
        raise OutputError(
            "the output folder must differ from the input folder (inputs are never overwritten)"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output '{out_dir}' is a file; give a folder for a folder of inputs")
    out_dir.mkdir(parents=True, exist_ok=True)
    items = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
    )
    if not items:
        raise InputError(f"no images or videos in '{folder}'")
    report = ApplyReport()
    started = time.perf_counter()
    targets: dict[Path, Path] = {}
    for item in items:  # two inputs that would write the same output: the second is reported
        target = out_dir / item.name
        if suffix and item.suffix.lower() in IMAGE_SUFFIXES:
            target = target.with_suffix(suffix)
        if target in targets:
            report.failed.append(
                (item, f"its output '{target.name}' is also {targets[target].name}'s; rename one")
            )
        else:
            targets[target] = item
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(targets), unit="file", desc=f"{getattr(effect, 'name', 'effect')} {folder.name}")
    for target, item in targets.items():
        try:
            if target.exists():
                report.skipped.append(target)
                if on_item:
                    on_item(item, target, "exists")
                continue
            one = apply_to_file(
                effect, item, target, options=options, progress=False, require_faces=require_faces
            )
            report.warnings += one.warnings
            report.outputs += one.outputs
            report.frames += one.frames
            report.faces += one.faces
            report.media_seconds += one.media_seconds
            if on_item:
                on_item(item, target, None)
        except PortraitFxError as err:
            report.failed.append((item, str(err)))
            if on_item:
                on_item(item, None, str(err))
        finally:
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    report.seconds = time.perf_counter() - started
    return report


def apply_to_path(
    effect: Effect,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    options: AnalyzeOptions | None = None,
    progress: bool | None = None,
    require_faces: bool = True,
) -> ApplyReport:
    """:func:`apply_to_folder` for a folder, :func:`apply_to_file` otherwise.

    With ``require_faces=False`` an image without a face is copied unchanged and a
    warning is added to the report instead of raising :class:`NoFaceError`.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    if Path(src).is_dir():
        return apply_to_folder(
            effect, src, dst, options=options, progress=progress, require_faces=require_faces
        )
    return apply_to_file(effect, src, dst, options=options, progress=progress, require_faces=require_faces)
