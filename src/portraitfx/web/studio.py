"""The web studio: a Gradio app over the effects, the style builder and provenance.

:class:`Studio` holds the callbacks (plain methods, testable without a browser);
:func:`build_studio` lays them out as a :class:`gradio.Blocks`; :func:`launch`
serves it with the safe defaults:

* it listens on 127.0.0.1; any other address needs a password or a token;
* no public share link, ever (``share=False``);
* no request leaves the computer: analytics off, system fonts, no CDN;
* effects run one at a time (they use every core);
* every result is made by :func:`~portraitfx.runtime.apply.apply_to_file`, so files,
  provenance metadata and watermarks are exactly those of the CLI;
* each browser session works in its own folder, removed when the tab closes; only
  files uploaded through Gradio (or the built-in sample) are ever opened.

Example:
    >>> from portraitfx.web.studio import StudioSettings, launch            # doctest: +SKIP
    >>> launch(host="127.0.0.1", port=7860, auth=("me", "secret"))          # doctest: +SKIP
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no calls home

import atexit
import contextlib
import hashlib
import hmac
import ipaddress
import itertools
import logging
import re
import shutil
import signal
import tempfile
import threading
import webbrowser
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import numpy as np

from portraitfx.errors import ConfigError, InputError, PortraitFxError

__all__ = [
    "ApplyOutputs",
    "Studio",
    "StudioResult",
    "StudioSettings",
    "StyleOutputs",
    "TokenGate",
    "build_studio",
    "check_host",
    "launch",
    "mount_studio",
]

log = logging.getLogger(__name__)

IMAGE_TYPES = [".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"]
VIDEO_TYPES = [".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"]
MARKED_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}  # formats that hold provenance metadata
THUMB_SIDE = 160
PREVIEW_SIDE = 1024
MAX_FACE_INDEX = 7
_STYLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_QUOTED_PATH = re.compile(r"'(?:[A-Za-z]:)?[/\\][^']*[/\\]([^'/\\]+)'")

CONSENT_NOTE = (
    "**Consent.** Swap faces only with the consent of everyone involved: the person "
    "whose face is put in and the people whose faces are replaced. Results are marked "
    "as AI-edited (file metadata and an invisible watermark); do not remove the marks. "
    "See *docs/responsible-use.md*."
)
NOT_YET = (
    "AI portraits (Stable Diffusion) need model files on the server: use `portraitfx portrait` on the "
    "command line (see *docs/portrait.md*)."
)
HAIR_EDITS = ["recolor", "hairline", "fill", "bangs"]


def _theme() -> Any:
    """The default theme with system fonts only (nothing is fetched from a font CDN)."""
    return gr.themes.Default(
        font=[gr.themes.Font("system-ui"), "sans-serif"],
        font_mono=[gr.themes.Font("ui-monospace"), "monospace"],
    )


CSS = """
#pfx-styles .thumbnail-item { min-width: 0; }
.pfx-note { font-size: 0.9em; opacity: 0.85; }
"""


@dataclass(frozen=True)
class StudioSettings:
    """How the studio works.

    Attributes:
        work_dir: folder for the sessions' files (default: a new temporary folder,
            removed when the process ends).
        max_faces: most faces an effect looks at per image or frame.
        max_file_size: largest upload Gradio accepts (e.g. ``"500mb"``).
        title: the page title.
    """

    work_dir: Path | None = None
    max_faces: int = 8
    max_file_size: str = "500mb"
    title: str = "portraitfx studio"


@dataclass
class StudioResult:
    """What one effect run made.

    Attributes:
        kind: ``"image"`` or ``"video"``.
        before: the input as shown (images: a preview, rotation applied; videos: the upload).
        output: the result file (what the download offers).
        provenance: a line about the marks read back from ``output``, for marked effects.
        summary: a line about what was done.
        warnings: things the user should know (e.g. no face, copied as is).
    """

    kind: str
    before: Path
    output: Path
    provenance: str | None = None
    summary: str = ""
    warnings: list[str] = field(default_factory=list)


class ApplyOutputs(NamedTuple):
    """The Apply tab's outputs, in the order they are wired."""

    photo_box: Any
    slider: Any
    video_box: Any
    video_before: Any
    video_after: Any
    download: Any
    provenance: Any
    status: Any


class StyleOutputs(NamedTuple):
    """The Style builder tab's outputs, in the order they are wired."""

    preview: Any
    style_file: Any
    status: Any
    gallery: Any
    style: Any


def _one_line(err: BaseException) -> str:
    """The error's message on one line, server folders cut from quoted paths."""
    text = " ".join(str(err).split()) or type(err).__name__
    return _QUOTED_PATH.sub(lambda m: f"'{m.group(1)}'", text)


def _fail(err: PortraitFxError) -> gr.Error:
    """A :class:`gradio.Error` (one line in the page, no traceback) for a library error."""
    message = _one_line(err)
    log.info("web studio: %s", message)
    return gr.Error(message, print_exception=False)


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    k = side / max(h, w)
    if k >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)


def _split_at(before: Path, after: Path) -> float:
    """Where the before/after divider goes (percent of the width): the middle of what changed."""
    from portraitfx.io.images import load_image

    a, b = load_image(before), load_image(after)
    if a.shape != b.shape:
        return 50.0
    change = np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(axis=(0, 2)).astype(np.float64)
    change[change < 0.2 * change.max(initial=0.0)] = 0.0  # ignore faint changes (e.g. a watermark)
    if change.sum() <= 0:
        return 50.0
    centre = float((change * np.arange(change.size)).sum() / change.sum())
    return round(100.0 * (centre + 0.5) / change.size, 1)


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


class Studio:
    """The studio's work: every callback of the page, as methods.

    Args:
        settings: :class:`StudioSettings`.

    The methods that the page calls (:meth:`use_sample`, :meth:`show_input`,
    :meth:`apply`, :meth:`build_style`, :meth:`refresh_styles`) raise
    :class:`gradio.Error` with the library's one-line message for anything a
    user can cause; :meth:`run_effect` and :meth:`make_style` do the work and
    raise :class:`~portraitfx.errors.PortraitFxError`.
    """

    def __init__(self, settings: StudioSettings | None = None) -> None:
        self.settings = settings or StudioSettings()
        if self.settings.work_dir is not None:
            self.root = Path(self.settings.work_dir).resolve()
            self.root.mkdir(parents=True, exist_ok=True)
            self._own_root = False
        else:
            self.root = Path(tempfile.mkdtemp(prefix="portraitfx-web-")).resolve()
            self._own_root = True
            atexit.register(self.close)  # also when the caller never calls close()
        self._counter = itertools.count(1)
        self._thumbs: dict[tuple[str, float], np.ndarray] = {}
        self._lock = threading.Lock()

    # -- sessions and uploads ---------------------------------------------------------
    def session_dir(self, request: gr.Request | None = None) -> Path:
        """This browser session's folder (``local`` outside a browser session)."""
        key = getattr(request, "session_hash", None) or "local"
        name = hashlib.sha256(str(key).encode()).hexdigest()[:20]
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def close_session(self, request: gr.Request | None = None) -> None:
        """Remove the session's folder (the page calls it when the tab closes)."""
        key = getattr(request, "session_hash", None)
        if key:
            shutil.rmtree(self.root / hashlib.sha256(str(key).encode()).hexdigest()[:20], ignore_errors=True)

    def close(self) -> None:
        """Remove the work folder if the studio made it."""
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _upload(self, value: Any, what: str, session: Path) -> Path:
        """The path of an uploaded file, refused unless Gradio's uploads or this session hold it."""
        from gradio.utils import get_upload_folder

        if value is None or value == "":
            raise InputError(f"upload {what} first")
        raw = getattr(value, "path", None) or getattr(value, "name", None) or value
        path = Path(str(raw)).resolve()
        allowed = (Path(get_upload_folder()).resolve(), session.resolve())
        if not any(_is_within(path, folder) for folder in allowed):
            raise InputError(f"'{path.name}' was not uploaded through the studio")
        if not path.is_file():
            raise InputError(f"the upload '{path.name}' is gone; upload it again")
        return path

    def _output_path(self, session: Path, source: Path, label: str, suffix: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.stem).strip("._") or "input"
        return session / f"{stem[:48]}_{label}_{next(self._counter)}{suffix}"

    # -- styles -----------------------------------------------------------------------
    def style_names(self) -> list[str]:
        """The built-in and installed styles."""
        from portraitfx.effects.stylize import list_styles

        return list_styles()

    def _thumbnail(self, name: str) -> np.ndarray | None:
        from portraitfx.effects.stylize.builtin import BUILTIN_STYLES, render_builtin
        from portraitfx.effects.stylize.pack import STYLE_SUFFIX, load_style, styles_dir

        if name in BUILTIN_STYLES:
            key = (name, 0.0)
        else:
            path = styles_dir() / f"{name}{STYLE_SUFFIX}"
            key = (name, path.stat().st_mtime if path.is_file() else -1.0)
        with self._lock:
            if key in self._thumbs:
                return self._thumbs[key]
        try:
            art = render_builtin(name) if name in BUILTIN_STYLES else load_style(name).exemplar
        except PortraitFxError as err:  # a damaged installed style: left out of the gallery
            log.warning("web studio: no thumbnail for style %r: %s", name, _one_line(err))
            return None
        thumb = _shrink(np.ascontiguousarray(art), THUMB_SIDE)
        with self._lock:
            self._thumbs[key] = thumb
        return thumb

    def gallery(self) -> list[tuple[np.ndarray, str]]:
        """``(thumbnail, name)`` of every style (built-in ones are the stylised sample)."""
        items = []
        for name in self.style_names():
            thumb = self._thumbnail(name)
            if thumb is not None:
                items.append((thumb, name))
        return items

    def refresh_styles(self, current: str | None = None) -> tuple[Any, Any]:
        """Gallery and style choices, e.g. after a style was installed elsewhere."""
        names = self.style_names()
        value = current if current in names else (names[0] if names else None)
        return gr.Gallery(value=self.gallery()), gr.Radio(choices=names, value=value)

    def pick_style(self, evt: gr.SelectData) -> str:
        """The style whose thumbnail was clicked."""
        value = evt.value
        caption = value.get("caption") if isinstance(value, dict) else None
        names = self.style_names()
        if caption in names:
            return caption
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if isinstance(index, int) and 0 <= index < len(names):
            return names[index]
        raise gr.Error("unknown style; reload the page", print_exception=False)

    # -- inputs -----------------------------------------------------------------------
    def use_sample(self, request: gr.Request | None = None) -> str:
        """Copy the built-in sample portrait into the session; its path fills the upload box."""
        from portraitfx.assets import sample_path

        session = self.session_dir(request)
        src = sample_path()
        dst = session / src.name
        if not dst.is_file():
            shutil.copyfile(src, dst)
        return str(dst)

    def show_input(self, value: Any, request: gr.Request | None = None) -> tuple[Any, Any]:
        """Preview of the upload: a photo (rotation applied) or the video."""
        if value is None:
            return gr.Image(value=None, visible=True), gr.Video(value=None, visible=False)
        try:
            path = self._upload(value, "a photo or a video", self.session_dir(request))
            kind = self._kind(path)
            if kind == "video":
                from portraitfx.io.video import probe_video

                probe_video(path)  # a damaged video is reported now, not after Apply
                return gr.Image(value=None, visible=False), gr.Video(value=str(path), visible=True)
            from portraitfx.io.images import load_image

            return gr.Image(value=_shrink(load_image(path), PREVIEW_SIDE), visible=True), gr.Video(
                value=None, visible=False
            )
        except PortraitFxError as err:
            raise _fail(err) from None

    @staticmethod
    def _kind(path: Path) -> str:
        from portraitfx.runtime.analyze import media_kind

        return media_kind(path)

    # -- effects ----------------------------------------------------------------------
    def effect_names(self) -> list[str]:
        """The registered effects (those the API serves: none that needs a server-side model file)."""
        from portraitfx.server.effects import servable_effects

        return servable_effects()

    def _create_effect(
        self,
        effect: str,
        session: Path,
        *,
        style: str | None,
        region: str,
        strength: float,
        sources: Sequence[Any] | None,
        target_face: int | None,
        shape: float,
        skin: float,
        consent: bool,
        hair_edit: str = "recolor",
        hair_color: str = "auburn",
        hair_amount: float = 0.5,
    ) -> Any:
        from portraitfx.effects import create_effect

        if effect not in self.effect_names():
            raise ConfigError(f"unknown effect {effect!r}; choose one of {', '.join(self.effect_names())}")
        if effect == "stylize":
            names = self.style_names()
            if style not in names:  # never a path: styles are picked from the list
                raise ConfigError(f"pick a style from the gallery ({', '.join(names)})")
            return create_effect("stylize", style=style, region=region, strength=float(strength))
        if effect == "swap":
            if not consent:
                raise ConfigError(
                    "tick the consent box: swap faces only with the consent of the people shown"
                )
            photos = [s for s in (sources or []) if s]
            if not photos:
                raise InputError("upload a photo of the person to put in (the source face)")
            paths = [str(self._upload(p, "the source photo", session)) for p in photos]
            index = None if target_face is None or int(target_face) < 0 else int(target_face)
            return create_effect(
                "swap", source=paths, target_face=index, shape=float(shape), skin=float(skin)
            )
        if effect == "toon":
            return create_effect("toon", strength=float(strength))
        if effect == "hair":
            if hair_edit not in HAIR_EDITS:
                raise ConfigError(f"pick a hair edit: {', '.join(HAIR_EDITS)}")
            a = min(max(float(hair_amount), 0.0), 1.0)
            amount = {"recolor": a, "hairline": 0.6 * (2 * a - 1), "fill": a, "bangs": 0.2 + 0.8 * a}[
                hair_edit
            ]
            color = (hair_color or "auburn").strip() if hair_edit == "recolor" else None
            return create_effect("hair", edit=hair_edit, color=color, amount=amount)
        return create_effect(effect)

    def run_effect(
        self,
        input_file: Any,
        effect: str,
        *,
        style: str | None = "pencil",
        region: str = "face",
        strength: float = 1.0,
        sources: Sequence[Any] | None = None,
        target_face: int | None = None,
        shape: float = 0.8,
        skin: float = 0.85,
        consent: bool = False,
        session: Path | None = None,
        hair_edit: str = "recolor",
        hair_color: str = "auburn",
        hair_amount: float = 0.5,
    ) -> StudioResult:
        """Apply an effect to an uploaded photo or video, as the CLI would.

        Raises:
            PortraitFxError: anything wrong with the inputs or options (one line).
        """
        from portraitfx.face.analyze import AnalyzeOptions
        from portraitfx.runtime.apply import apply_to_file

        session = session or self.session_dir()
        src = self._upload(input_file, "a photo or a video", session)
        kind = self._kind(src)
        if kind == "video":
            suffix = ".mp4"
        else:
            suffix = src.suffix.lower() if src.suffix.lower() in MARKED_IMAGE_SUFFIXES else ".png"
        fx = self._create_effect(
            effect, session, style=style, region=region, strength=strength, sources=sources,
            target_face=target_face, shape=shape, skin=skin, consent=consent,
            hair_edit=hair_edit, hair_color=hair_color, hair_amount=hair_amount,
        )  # fmt: skip
        try:
            dst = self._output_path(session, src, effect, suffix)
            report = apply_to_file(
                fx, src, dst, options=AnalyzeOptions(max_faces=self.settings.max_faces),
                progress=kind == "video",  # the page follows this bar (gr.Progress tracks tqdm)
                require_faces=effect != "swap",  # as the CLI: a swap with nobody to swap copies the input
                template=None,
            )  # fmt: skip
            marked = getattr(fx, "provenance_effect", None)
        finally:
            fx.close()
        if kind == "video":
            before = src
            rate = report.seconds / report.media_seconds if report.media_seconds else 0.0
            summary = (
                f"{report.frames} frames, {report.faces} face(s) in {report.seconds:.1f} s "
                f"({rate:.2f} s per second of video)"
            )
        else:
            from portraitfx.io.images import load_image, save_image

            before = self._output_path(session, src, "before", ".png")
            save_image(before, load_image(src))
            summary = f"{report.faces} face(s) in {report.seconds * 1000:.0f} ms"
        provenance = self.provenance_line(dst) if marked else None
        return StudioResult(kind, before, dst, provenance, summary, list(report.warnings))

    def provenance_line(self, path: Path) -> str:
        """What a reader of ``path`` finds: the metadata statement and the watermark."""
        from portraitfx.io.images import load_image
        from portraitfx.provenance import detect_watermark, read_provenance

        record = read_provenance(path)
        if self._kind(path) == "video":
            from portraitfx.provenance.verify import verify_file

            mark = verify_file(path).watermark
        else:
            mark = detect_watermark(load_image(path))
        parts = []
        if record:
            where = ", ".join(record.get("found_in", [])) or "metadata"
            parts.append(f"metadata says *{record.get('statement', 'AI-edited')}* ({where})")
        else:
            parts.append("no provenance metadata")
        if mark.found:
            parts.append(f"invisible watermark found (score {mark.score:.1f}, threshold {mark.threshold:g})")
        else:
            parts.append(f"no watermark ({mark.reason or f'score {mark.score:.1f}'})")
        head = "Marked as AI-edited" if (record or mark.found) else "Not marked"
        return f"**Provenance.** {head}: {'; '.join(parts)}. Check any copy with `portraitfx verify FILE`."

    def apply(
        self,
        input_file: Any,
        effect: str,
        style: str | None,
        region: str,
        strength: float,
        sources: Sequence[Any] | None,
        target_face: int | None,
        shape: float,
        skin: float,
        consent: bool,
        hair_edit: str = "recolor",
        hair_color: str = "auburn",
        hair_amount: float = 0.5,
        request: gr.Request | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008  (how Gradio asks for it)
    ) -> ApplyOutputs:
        """The Apply button: run the effect; before/after, the file, provenance, a status line."""
        try:
            progress(None, desc=f"{effect}: working")
            result = self.run_effect(
                input_file, effect, style=style, region=region, strength=strength, sources=sources,
                target_face=target_face, shape=shape, skin=skin, consent=consent,
                session=self.session_dir(request), hair_edit=hair_edit, hair_color=hair_color,
                hair_amount=hair_amount,
            )  # fmt: skip
        except PortraitFxError as err:
            raise _fail(err) from None
        for warning in result.warnings:
            gr.Warning(_one_line(Exception(warning)))
        status = f"**{effect}**: {result.summary}; download the result below."
        video = result.kind == "video"
        slider: Any = None
        if not video:
            slider = gr.ImageSlider(
                value=(str(result.before), str(result.output)),
                slider_position=_split_at(result.before, result.output),
            )
        return ApplyOutputs(
            photo_box=gr.Column(visible=not video),
            slider=slider,
            video_box=gr.Column(visible=video),
            video_before=str(result.before) if video else None,
            video_after=str(result.output) if video else None,
            download=str(result.output),
            provenance=result.provenance or "",
            status=status,
        )

    # -- style builder ----------------------------------------------------------------
    def make_style(
        self, artwork: Any, name: str | None = None, install: bool = False, session: Path | None = None
    ) -> tuple[Path, np.ndarray, str]:
        """Build a style from an uploaded artwork.

        Returns:
            ``(style_file, preview, message)``: the ``.pfxstyle`` in the session
            folder, the exemplar beside its mesh, and a line about what was done.
        """
        from portraitfx.cli.style import preview
        from portraitfx.effects.stylize.builtin import BUILTIN_STYLES
        from portraitfx.effects.stylize.pack import STYLE_SUFFIX, build_style, save_style, styles_dir
        from portraitfx.io.images import load_image

        session = session or self.session_dir()
        src = self._upload(artwork, "an artwork (a stylised portrait)", session)
        name = (name or "").strip() or re.sub(r"[^A-Za-z0-9._-]+", "-", src.stem).strip("-._") or "my-style"
        if not _STYLE_NAME.match(name) or name.startswith("builtin-"):
            raise ConfigError(
                f"cannot name a style {name!r}: use letters, digits, '.', '-' or '_' "
                "(up to 64, not starting with 'builtin-')"
            )
        if install and name in BUILTIN_STYLES:
            raise ConfigError(f"{name!r} is a built-in style; choose another name")
        pack = build_style(load_image(src), name=name, source=f"'{src.name}'")
        out = save_style(pack, session / f"{name}{STYLE_SUFFIX}")
        message = f"style **{name}** built in {float(pack.meta.get('build_seconds', 0.0)):.2f} s"
        if install:
            target = styles_dir() / f"{name}{STYLE_SUFFIX}"
            target.parent.mkdir(parents=True, exist_ok=True)
            replaced = target.is_file()
            save_style(pack, target)
            message += (
                f"; {'replaced the installed style' if replaced else 'installed'}: pick it on the Apply tab"
            )
        return out, preview(pack), message

    def build_style(
        self, artwork: Any, name: str | None, install: bool, request: gr.Request | None = None
    ) -> StyleOutputs:
        """The Build button of the Style builder."""
        try:
            path, picture, message = self.make_style(artwork, name, install, self.session_dir(request))
        except PortraitFxError as err:
            raise _fail(err) from None
        if install:
            gallery, style = self.refresh_styles(path.stem)
        else:
            gallery, style = gr.Gallery(), gr.Radio()
        return StyleOutputs(_shrink(picture, PREVIEW_SIDE), str(path), message, gallery, style)


def _working(effect: str) -> tuple[str, str, None]:
    """Clear the last run's status, provenance and file while a new one runs."""
    return f"**{effect}**: working ...", "", None


def _toggle_options(effect: str) -> tuple[Any, Any, Any]:
    return (
        gr.Group(visible=effect == "stylize"),
        gr.Group(visible=effect == "swap"),
        gr.Group(visible=effect == "hair"),
    )


def build_studio(settings: StudioSettings | None = None, studio: Studio | None = None) -> gr.Blocks:
    """The studio page.

    Args:
        settings: :class:`StudioSettings` (ignored when ``studio`` is given).
        studio: the :class:`Studio` whose methods the page calls (default: a new one).

    Returns:
        The :class:`gradio.Blocks`, queued (effects run one at a time); the
        :class:`Studio` is its ``studio`` attribute. Serve it with :func:`launch`.
    """
    studio = studio or Studio(settings)
    effects = studio.effect_names()
    styles = studio.style_names()
    one_at_a_time = {"concurrency_limit": 1, "concurrency_id": "effects"}
    with gr.Blocks(
        title=studio.settings.title, analytics_enabled=False, delete_cache=(3600, 6 * 3600)
    ) as demo:
        gr.Markdown(
            "## portraitfx studio\nFace effects on your photos and videos, computed on this computer."
        )
        with gr.Tabs():
            with gr.Tab("Apply", id="apply"), gr.Row(equal_height=False):
                with gr.Column(scale=1):
                    input_file = gr.File(
                        label="Photo or video",
                        file_types=IMAGE_TYPES + VIDEO_TYPES,
                        type="filepath",
                        elem_id="pfx-input",
                        height=120,
                    )
                    sample = gr.Button("Use the sample", size="sm", elem_id="pfx-sample")
                    photo_in = gr.Image(
                        label="Input", interactive=False, height=280, format="png", elem_id="pfx-input-photo"
                    )
                    video_in = gr.Video(label="Input", interactive=False, visible=False, height=280)
                    effect = gr.Radio(
                        effects,
                        value="stylize" if "stylize" in effects else effects[0],
                        label="Effect",
                        elem_id="pfx-effect",
                    )
                    gr.Markdown(NOT_YET, elem_classes="pfx-note")
                    with gr.Group(visible="stylize" in effects) as stylize_opts:
                        gallery = gr.Gallery(
                            value=studio.gallery(),
                            label="Styles (click one)",
                            columns=4,
                            height=150,
                            allow_preview=False,
                            object_fit="cover",
                            format="png",
                            elem_id="pfx-styles",
                        )
                        style = gr.Radio(
                            styles, value=styles[0] if styles else None, label="Style", elem_id="pfx-style"
                        )
                        with gr.Row():
                            region = gr.Radio(
                                ["face", "head", "frame"],
                                value="face",
                                label="Region",
                                info="the face; the whole head (hair, neck); or the whole picture",
                            )
                            strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Strength")
                    with gr.Group(visible=False) as swap_opts:
                        gr.Markdown(CONSENT_NOTE, elem_id="pfx-consent-note")
                        sources = gr.File(
                            label="Source photo(s) of the person to put in",
                            file_count="multiple",
                            file_types=IMAGE_TYPES,
                            type="filepath",
                            height=100,
                            elem_id="pfx-sources",
                        )
                        target_face = gr.Dropdown(
                            [("all faces", -1), ("face 0 (the largest)", 0)]
                            + [(f"face {i}", i) for i in range(1, MAX_FACE_INDEX + 1)],
                            value=-1,
                            label="Target face",
                        )
                        with gr.Row():
                            shape = gr.Slider(
                                0,
                                1,
                                value=0.8,
                                step=0.05,
                                label="Face shape",
                                info="how far jaw and cheeks take the source's shape",
                            )
                            skin = gr.Slider(
                                0,
                                1,
                                value=0.85,
                                step=0.05,
                                label="Skin tone",
                                info="how far the skin follows the target's",
                            )
                        consent = gr.Checkbox(
                            False, label="Everyone shown has agreed to this swap", elem_id="pfx-consent"
                        )
                    with gr.Group(visible=False) as hair_opts:
                        hair_edit = gr.Radio(
                            HAIR_EDITS, value="recolor", label="Hair edit", elem_id="pfx-hair-edit"
                        )
                        hair_color = gr.Textbox(
                            "auburn",
                            label="Colour (recolor)",
                            info="a name (auburn, blonde, rose, ...) or '#c02060'",
                        )
                        hair_amount = gr.Slider(
                            0, 1, value=0.5, step=0.05, label="Amount",
                            info="recolor: strength; hairline: 0 raises, 1 lowers; fill: strength; bangs: length",
                        )  # fmt: skip
                    apply = gr.Button("Apply", variant="primary", elem_id="pfx-apply")
                with gr.Column(scale=1):
                    status = gr.Markdown(
                        "Upload a photo or a video, or use the sample.", elem_id="pfx-status"
                    )
                    with gr.Column(visible=True) as photo_box:
                        slider = gr.ImageSlider(
                            label="Before / after",
                            type="filepath",
                            format="png",
                            interactive=False,
                            max_height=640,
                            elem_id="pfx-result",
                        )
                    with gr.Column(visible=False) as video_box, gr.Row():
                        video_before = gr.Video(label="Before", interactive=False)
                        video_after = gr.Video(label="After", interactive=False, elem_id="pfx-result-video")
                    provenance = gr.Markdown("", elem_id="pfx-provenance")
                    download = gr.File(label="Result file", interactive=False, elem_id="pfx-download")
            with gr.Tab("Style builder", id="style-builder"):
                gr.Markdown(
                    "Upload a stylised portrait (a painting, a drawing, ...) of one face, roughly frontal, "
                    "at least ~40 px between the eyes. It becomes a style (a `.pfxstyle` file) that "
                    "`portraitfx stylize -s FILE` and the Apply tab can use."
                )
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1):
                        artwork = gr.File(
                            label="Artwork", file_types=IMAGE_TYPES, type="filepath", elem_id="pfx-artwork"
                        )
                        style_name = gr.Textbox(label="Style name", placeholder="default: the file's name")
                        install = gr.Checkbox(False, label="Install it (so it shows in the style gallery)")
                        build = gr.Button("Build the style", variant="primary", elem_id="pfx-build")
                    with gr.Column(scale=1):
                        style_status = gr.Markdown("", elem_id="pfx-style-status")
                        style_preview = gr.Image(
                            label="The style and its face mesh", interactive=False, format="png"
                        )
                        style_file = gr.File(label="Style file", interactive=False, elem_id="pfx-style-file")
        gr.Markdown(
            "Runs on this computer only; uploads and results stay in a temporary folder that is removed "
            "when the tab closes. Effects run one at a time.",
            elem_classes="pfx-note",
        )

        sample.click(studio.use_sample, outputs=input_file, api_visibility="private")
        input_file.change(
            studio.show_input, inputs=input_file, outputs=[photo_in, video_in], api_visibility="private"
        )
        effect.change(
            _toggle_options,
            inputs=effect,
            outputs=[stylize_opts, swap_opts, hair_opts],
            api_visibility="private",
        )
        gallery.select(studio.pick_style, outputs=style, api_visibility="private")
        apply.click(
            _working,
            inputs=effect,
            outputs=[status, provenance, download],
            queue=False,
            api_visibility="private",
        ).then(
            studio.apply,
            inputs=[
                input_file,
                effect,
                style,
                region,
                strength,
                sources,
                target_face,
                shape,
                skin,
                consent,
                hair_edit,
                hair_color,
                hair_amount,
            ],
            outputs=[photo_box, slider, video_box, video_before, video_after, download, provenance, status],
            api_name="apply",
            show_progress_on=[slider, video_after],
            **one_at_a_time,
        )
        build.click(
            studio.build_style,
            inputs=[artwork, style_name, install],
            outputs=[style_preview, style_file, style_status, gallery, style],
            api_name="build_style",
            show_progress_on=[style_preview],
            **one_at_a_time,
        )
        demo.load(studio.refresh_styles, inputs=style, outputs=[gallery, style], api_visibility="private")
        demo.unload(studio.close_session)
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.studio = studio  # type: ignore[attr-defined]
    return demo


# -- serving -----------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, auth: tuple[str, str] | None, token: str | None) -> None:
    """Refuse to listen beyond this computer without a password or a token.

    Raises:
        ConfigError: a non-loopback ``host`` with neither, or both given, or an empty one.
    """
    if auth is not None and token is not None:
        raise ConfigError("give a password or a token, not both")
    if auth is not None and (len(auth) != 2 or not auth[0] or not auth[1]):
        raise ConfigError("the password must be given as USER:PASS, both non-empty")
    if token is not None and len(token) < 8:
        raise ConfigError("the token must be at least 8 characters long")
    if not _is_loopback(host) and auth is None and token is None:
        raise ConfigError(
            f"refusing to listen on {host} without a password or token: anyone on the network could use "
            "the studio; add --password USER:PASS or --token TOKEN, or keep the default 127.0.0.1"
        )


class TokenGate:
    """ASGI middleware: every request needs the token (``?token=``, a Bearer header or the cookie).

    A page opened with ``?token=...`` is redirected to the same address without it,
    with an HttpOnly cookie that the page's own requests then carry.
    """

    def __init__(self, app: Any, token: str, cookie: str) -> None:
        self.app = app
        self.cookie = cookie
        self._token = token.encode()
        self._cookie_value = hmac.new(self._token, b"portraitfx-web-cookie", hashlib.sha256).hexdigest()

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self._token)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        from starlette.requests import HTTPConnection
        from starlette.responses import PlainTextResponse, RedirectResponse

        conn = HTTPConnection(scope)
        cookie = conn.cookies.get(self.cookie)
        header = conn.headers.get("authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
        client = scope.get("client") or ("", 0)
        if (
            (cookie is not None and hmac.compare_digest(cookie, self._cookie_value))
            or self._matches(bearer)
            or (conn.url.path.endswith("/startup-events") and _is_loopback(client[0] or ""))
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and self._matches(conn.query_params.get("token")):
            from urllib.parse import urlencode

            rest = urlencode([(k, v) for k, v in conn.query_params.multi_items() if k != "token"])
            response = RedirectResponse(conn.url.path + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(self.cookie, self._cookie_value, httponly=True, samesite="lax", path="/")
            await response(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = PlainTextResponse(
            "401 unauthorized: open the address printed by 'portraitfx web' (it ends in ?token=...)", 401
        )
        await response(scope, receive, send)


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: tuple[str, str] | None = None,
    *,
    token: str | None = None,
    settings: StudioSettings | None = None,
    open_browser: bool = False,
    block: bool = True,
    quiet: bool = False,
) -> gr.Blocks:
    """Serve the studio.

    Args:
        host: address to listen on; anything but a loopback address needs ``auth`` or ``token``.
        port: TCP port.
        auth: ``(user, password)`` for Gradio's login page.
        token: a secret every request must carry (open ``http://HOST:PORT/?token=TOKEN``).
        settings: :class:`StudioSettings`.
        open_browser: open the page in the default browser.
        block: serve until Ctrl+C; ``False`` returns at once (call ``.close()`` on the result).
        quiet: print nothing.

    Returns:
        The running :class:`gradio.Blocks` (its ``local_url``; ``studio`` is the :class:`Studio`).

    Raises:
        ConfigError: an unsafe address without auth, a bad password or token, a port in use.
    """
    check_host(host, auth, token)
    settings = settings or StudioSettings()
    demo = build_studio(settings)
    app_kwargs: dict[str, Any] = {}
    if token is not None:
        from starlette.middleware import Middleware

        app_kwargs["middleware"] = [Middleware(TokenGate, token=token, cookie=f"portraitfx-web-{port}")]
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=False,  # never a public link
            auth=auth,
            auth_message="portraitfx studio: sign in with the password given to 'portraitfx web'",
            inbrowser=False,
            prevent_thread_lock=True,
            show_error=False,  # unexpected errors show as "Error", never a traceback
            quiet=True,
            ssr_mode=False,
            mcp_server=False,
            enable_monitoring=False,
            footer_links=["settings"],
            max_file_size=settings.max_file_size,
            app_kwargs=app_kwargs,
            theme=_theme(),
            css=CSS,
        )
    except OSError as err:
        demo.studio.close()  # type: ignore[attr-defined]
        raise ConfigError(f"cannot listen on {host}:{port} ({_one_line(err)}); pick another --port") from None
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/"
    link = f"{url}?token={token}" if token is not None else url
    if not quiet:
        print(f"portraitfx studio on {link}  (Ctrl+C to stop)", flush=True)
    if open_browser:
        with contextlib.suppress(Exception):
            webbrowser.open(link)
    if block:
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly under a service manager too
        try:
            demo.block_thread()  # until Ctrl+C
        finally:
            demo.close()
            demo.studio.close()  # type: ignore[attr-defined]
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return demo


def mount_studio(
    app: Any,
    path: str = "/studio",
    *,
    token: str | None = None,
    settings: StudioSettings | None = None,
) -> gr.Blocks:
    """Serve the studio inside another FastAPI app (e.g. the HTTP API's) at ``path``.

    ``portraitfx serve --studio`` does this, so one server on one port offers both.
    With ``token``, the studio's pages need it as the API's endpoints do (open
    ``PATH/?token=TOKEN`` once; a cookie carries it after that).

    Returns:
        The mounted :class:`gradio.Blocks`; close its ``studio`` when the app stops.
    """
    from starlette.routing import Mount

    settings = settings or StudioSettings()
    demo = build_studio(settings)
    gr.mount_gradio_app(
        app,
        demo,
        path=path,
        footer_links=["settings"],
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        max_file_size=settings.max_file_size,
        theme=_theme(),
        css=CSS,
    )
    if token is not None:
        for route in app.router.routes:
            if isinstance(route, Mount) and route.path == path.rstrip("/"):
                route.app = TokenGate(route.app, token=token, cookie="portraitfx-studio")
                break
        else:  # pragma: no cover - gradio changed how it mounts
            demo.studio.close()  # type: ignore[attr-defined]
            raise RuntimeError(f"the studio was not mounted at {path}; cannot protect it with the token")
    return demo


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
