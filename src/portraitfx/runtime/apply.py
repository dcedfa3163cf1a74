"""Run an effect over a file or a folder: images, videos (audio kept), folders of both.

Images: analyse (still mode) -> effect -> save (ICC profile kept).
Videos: track faces (stable ids, smoothed landmarks) -> effect with per-video
state -> encode with the source's audio.
With a template (:mod:`portraitfx.runtime.template`), videos skip face analysis:
faces (and the effect's per-face arrays) come from the prepared file.
Folders: every image and video inside (not recursive), written under the output
folder with the same names; outputs that already exist are skipped, so an
interrupted run resumes where it stopped.

Example:
    >>> effect = create_effect("stylize", style="pencil")                       # doctest: +SKIP
    >>> apply_to_file(effect, "clip.mp4", "clip_pencil.mp4")                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Union

from portraitfx.effects.base import Effect, EffectState
from portraitfx.errors import ConfigError, InputError, NoFaceError, OutputError, PortraitFxError
from portraitfx.face.analyze import AnalyzeOptions, FaceAnalyzer, require_face
from portraitfx.io.paths import atomic_output, check_input_path, check_output_path

if TYPE_CHECKING:  # pragma: no cover
    from portraitfx.runtime.template import Template

__all__ = ["ApplyReport", "TemplateArg", "apply_to_file", "apply_to_folder", "apply_to_path"]

log = logging.getLogger(__name__)

#: A template for :func:`apply_to_file`: a loaded one, a file, ``"auto"`` (the cache of
#: the video, looked up only for effects with ``uses_template = True``) or ``None`` (never).
TemplateArg = Union["Template", str, os.PathLike, Literal["auto"], None]

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
        template: the template file a video's faces came from (analysis skipped), or ``None``.
    """

    outputs: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    media_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    template: Path | None = None


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
    template: TemplateArg = "auto",
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
        template: for a video, where its faces come from instead of the tracker: a
            :class:`~portraitfx.runtime.template.Template` or its file (it must match
            the video: same frame count and size), ``"auto"`` (the cache made by
            :func:`~portraitfx.runtime.template.prepare_template` for this video, if
            there is a usable one and the effect has ``uses_template = True``) or
            ``None`` (always analyse).
    """
    source = check_input_path(src)
    check_output_path(dst, inputs=(source,))
    options = options or AnalyzeOptions()
    started = time.perf_counter()
    report = ApplyReport()
    if _is_video(source):
        _apply_video(effect, source, Path(dst), options, progress, require_faces, report, template)
    else:
        if template is not None and not (isinstance(template, str) and template == "auto"):
            raise ConfigError(f"a template is for videos; '{source}' is an image")
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


def _resolve_template(
    effect: Effect,
    src: Path,
    options: AnalyzeOptions,
    smooth: bool,
    template: TemplateArg,
    report: ApplyReport,
) -> tuple[Template | None, bool]:
    """The template to take ``src``'s faces from and whether it may carry the effect's arrays."""
    from portraitfx.runtime.template import Template, _find, _template_identity, tracker_settings

    if template is None:
        return None, False
    auto = isinstance(template, str) and template == "auto"
    if auto:
        if not getattr(effect, "uses_template", False):
            return None, False
        found, why = _find(src)
        if found is None:
            if why:
                report.warnings.append(why)
            return None, False
        tpl = found
    elif isinstance(template, Template):
        tpl = template
    else:
        tpl = Template.load(template)  # type: ignore[arg-type]
    wanted = tracker_settings(options, smooth)
    if tpl.tracker != wanted:
        differ = ", ".join(
            f"{k} {tpl.tracker.get(k)!r} (this run: {v!r})"
            for k, v in wanted.items()
            if tpl.tracker.get(k) != v
        )
        if auto:
            why = f"ignored the template cache of '{src.name}': it was prepared with {differ}"
            log.warning(why)
            report.warnings.append(why)
            return None, False
        report.warnings.append(
            f"template '{tpl.path.name}' was prepared with {differ}; using its faces anyway"
        )
    if not auto:
        from portraitfx.io.video import probe_video
        from portraitfx.runtime.template import video_fingerprint

        info = probe_video(src)
        if (info.width, info.height) != (tpl.width, tpl.height) or info.frame_count != tpl.frames:
            raise InputError(
                f"template '{tpl.path}' does not match '{src}': it has {tpl.frames} frames of "
                f"{tpl.width}x{tpl.height}, the video {info.frame_count} of {info.width}x{info.height}"
            )
        if video_fingerprint(src) != tpl.sha256:
            report.warnings.append(
                f"template '{tpl.path.name}' was prepared from another file ('{tpl.meta['video'].get('name')}') "
                "with the same frame count and size; using it"
            )
    name, version = _template_identity(effect)
    use_extras = bool(tpl.extra_keys) and (tpl.effect, tpl.effect_version) == (name, version)
    if tpl.extra_keys and not use_extras:
        report.warnings.append(
            f"template '{tpl.path.name}' holds arrays of {tpl.effect} {tpl.effect_version or ''}, not of "
            f"{name} {version or ''}; using its faces only (prepare it again to skip more work)"
        )
    return tpl, use_extras


def _apply_video(
    effect: Effect,
    src: Path,
    dst: Path,
    options: AnalyzeOptions,
    progress: bool,
    require_faces: bool,
    report: ApplyReport,
    template: TemplateArg = "auto",
) -> None:
    from portraitfx.io.video import process_video
    from portraitfx.runtime.template import make_tracker, tracker_settings

    state = EffectState()
    smooth = bool(getattr(effect, "smooth_landmarks", True))
    tpl, use_extras = _resolve_template(effect, src, options, smooth, template, report)
    with contextlib.ExitStack() as stack:
        # stages, each in its own thread (see process_video): faces -> effect (two halves
        # when it has begin/finish) -> watermark; every stage sees the frames in order,
        # so results do not change
        if tpl is None:
            tracker = stack.enter_context(make_tracker(tracker_settings(options, smooth)))
            # what the effect would take from a template, computed here in the analysis
            # stage: it depends on the video alone, and it takes work off the effect's stage
            make = getattr(effect, "template_preparer", None)
            preparer = make() if callable(make) else None

            def faces_of(frame) -> tuple:
                faces = tracker.update(frame.image, frame.time)
                extras = None
                if preparer is not None and faces:
                    extras = [preparer.prepare_face(frame.image, face) for face in faces]
                return frame, faces, extras

        else:

            def faces_of(frame) -> tuple:
                faces = tpl.faces(frame.index)
                extras = [tpl.extras(frame.index, i) if use_extras else None for i in range(len(faces))]
                return frame, faces, extras

        def count(item: tuple) -> tuple:
            report.faces += len(item[1])
            return item

        marker = getattr(effect, "provenance_effect", None)
        holds = bool(getattr(effect, "holds_faces", False))  # it may keep a face lost for a frame
        split_mark = bool(marker) and "mark" in inspect.signature(effect.apply).parameters

        def prepare(frame, faces: list, extras: list | None) -> bool:
            """Hand each face's template arrays to its state; False when there is nothing to do."""
            state.frame_index = frame.index
            if not faces and not (holds and state.tracks):
                return False
            for face, arrays in zip(faces, extras or [None] * len(faces), strict=True):
                scratch = state.for_face(face)
                if arrays:
                    scratch["template"] = arrays
                else:  # never last frame's arrays
                    scratch.pop("template", None)
            return True

        def run_effect(item: tuple) -> tuple:
            frame, faces, extras = item
            if not prepare(frame, faces, extras):
                return frame.image, False, None, None
            if split_mark:
                return effect.apply(frame.image, faces, state, mark=False), True, None, None  # type: ignore[call-arg]
            return effect.apply(frame.image, faces, state), False, None, None

        def mark(item: tuple) -> object:
            image, unmarked, base, changed = item
            if not unmarked:
                return image
            from portraitfx.provenance import mark_video_frame

            # converted for the encoder here, in this stage's thread (only the changed boxes,
            # when the decoded picture is at hand), and marked on Y
            return mark_video_frame(image, marker, base=base, changed=changed)

        stages = [lambda frame: count(faces_of(frame)), run_effect, mark]
        halves = (
            split_mark
            and callable(getattr(effect, "begin", None))
            and callable(getattr(effect, "finish", None))
        )
        if halves:
            # the effect comes in two halves (e.g. a swap's geometry, then its pixels): each
            # gets its own stage, so the halves of consecutive frames run at once
            reuse = "reuse_frame" in inspect.signature(effect.finish).parameters  # type: ignore[attr-defined]

            def begin(item: tuple) -> tuple:
                frame, faces, extras = item
                if not prepare(frame, faces, extras):
                    return frame, None
                return frame, effect.begin(frame.image, faces, state)  # type: ignore[attr-defined]

            def finish(item: tuple) -> tuple:
                frame, token = item
                if token is None:
                    return frame.image, False, None, None
                # (the decoded frame is not needed afterwards: drawn into, not copied)
                out = effect.finish(token, reuse_frame=True) if reuse else effect.finish(token)  # type: ignore[attr-defined]
                return out[0], True, frame.i420, getattr(token, "changed", None)

            stages = [lambda frame: count(faces_of(frame)), begin, finish, mark]
            if tpl is not None:  # reading a template's faces is no work: no thread of its own
                stages = [lambda frame: begin(count(faces_of(frame))), finish, mark]

        # into a temporary file first: a video with no face must not replace an existing output
        with atomic_output(dst, inputs=(src,)) as tmp:
            marked = getattr(effect, "provenance_effect", None)
            metadata = None
            if marked:
                from portraitfx.provenance import video_metadata

                metadata = video_metadata(marked)
            result = process_video(
                src, tmp, stages, progress=progress, metadata=metadata, keep_i420=bool(halves)
            )
            if tpl is not None and result.frames != tpl.frames:
                raise InputError(
                    f"'{src}' has {result.frames} frames but its template '{tpl.path}' {tpl.frames}; "
                    "prepare the template again"
                )
            if require_faces and report.faces == 0:
                raise NoFaceError(f"no face found in any frame of '{src}'")
    report.frames += result.frames
    report.media_seconds += result.seconds_of_video
    report.outputs.append(dst)
    report.template = tpl.path if tpl is not None else None


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
    template: Literal["auto"] | None = "auto",
) -> ApplyReport:
    """Apply ``effect`` to every image and video directly inside folder ``src``.

    Outputs keep their names (``suffix`` replaces image extensions, e.g. ``".png"``)
    under ``dst`` (created if missing). Existing outputs are skipped, so re-running
    resumes. A file that fails (no face, damaged) is reported and the rest go on.
    ``template`` is ``"auto"`` (each video's template cache, see :func:`apply_to_file`) or ``None``.
    """
    if template is not None and not (isinstance(template, str) and template == "auto"):
        raise ConfigError("a folder takes template='auto' or None; a template file belongs to one video")
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
                effect, item, target, options=options, progress=False, require_faces=require_faces,
                template=template,
            )  # fmt: skip
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
    template: TemplateArg = "auto",
) -> ApplyReport:
    """:func:`apply_to_folder` for a folder, :func:`apply_to_file` otherwise.

    With ``require_faces=False`` an image without a face is copied unchanged and a
    warning is added to the report instead of raising :class:`NoFaceError`.
    ``template`` is as for :func:`apply_to_file` (a folder takes only ``"auto"`` or ``None``).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    if Path(src).is_dir():
        return apply_to_folder(
            effect, src, dst, options=options, progress=progress, require_faces=require_faces,
            template=template,  # type: ignore[arg-type]
        )  # fmt: skip
    return apply_to_file(
        effect, src, dst, options=options, progress=progress, require_faces=require_faces, template=template
    )
