"""``portraitfx swap``: put a source person's face on the faces of a photo, a video or a folder.

``portraitfx swap prepare VIDEO`` analyses a template video once (faces, tracks and
the swap's per-face occluder masks and face motion) so later swaps into it skip that work.
``swap`` stays one command (``swap -s SRC INPUT -o OUT``): :class:`SwapCommand`
hands the arguments to :func:`prepare` when the first one is ``prepare``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from portraitfx.cli._run import check_paths, print_report


class SwapCommand(TyperCommand):
    """The ``swap`` command, with ``swap prepare ...`` dispatched to the ``prepare`` command."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        if args and args[0] == "prepare":
            name = f"{info_name or 'swap'} prepare"
            return _prepare_command().make_context(name, list(args[1:]), parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


@cache
def _prepare_command() -> Any:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(prepare)
    return typer.main.get_command(app)


def swap(
    source: Path = typer.Argument(..., help="Image, video (audio is kept) or folder of them to change."),
    faces: list[Path] = typer.Option(
        ..., "--source", "-s", help="Photo of the person to put in (repeat -s for more photos of them)."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Output file (same kind as the input) or, for a folder, output folder."
    ),
    target_face: int | None = typer.Option(
        None, "--target-face", min=0, help="Swap only this face (0 = largest) instead of all."
    ),
    reference: Path | None = typer.Option(
        None, "--reference", help="Swap only the faces of the person in this photo."
    ),
    shape: float = typer.Option(
        0.8, min=0.0, max=1.0, help="How far the jaw and cheeks take the source's shape."
    ),
    skin: float = typer.Option(0.85, min=0.0, max=1.0, help="How far the skin tone follows the target's."),
    max_faces: int = typer.Option(8, "--max-faces", min=1, help="Most faces to look at per image or frame."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="A learned swapper exported to ONNX (file or registry name) instead of the model-free swap.",
    ),
    restore: str | None = typer.Option(
        None,
        "--restore",
        help="With --model: a face-restoration ONNX model for faces bigger than the swapper's crop.",
    ),
    template: Path | None = typer.Option(
        None, "--template", help="Video: take its faces from this file made by 'portraitfx swap prepare'."
    ),
    no_template: bool = typer.Option(
        False, "--no-template", help="Video: analyse it even if 'portraitfx swap prepare' cached it."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Swap faces: the source person's face on the faces of an image, a video or a folder.

    Use it only with the consent of the people shown (see docs/responsible-use.md).
    To swap many faces into one video, run 'portraitfx swap prepare VIDEO' once
    first: later swaps into it skip the face analysis.

    Examples:

      portraitfx swap -s me.jpg group.jpg -o group_me.png --target-face 0

      portraitfx swap -s me.jpg -s me2.jpg clip.mp4 -o clip_me.mp4

      portraitfx swap -s me.jpg clip.mp4 -o clip_me.mp4 --model swapper.onnx

      portraitfx swap prepare clip.mp4   (see portraitfx swap prepare --help)
    """
    import sys

    from rich.console import Console

    from portraitfx.effects import create_effect
    from portraitfx.errors import ConfigError
    from portraitfx.face.analyze import AnalyzeOptions
    from portraitfx.io.paths import check_input_path
    from portraitfx.runtime.apply import apply_to_path

    if target_face is not None and reference is not None:
        raise ConfigError("give --target-face or --reference, not both")
    if restore is not None and model is None:
        raise ConfigError("--restore goes with --model")
    if template is not None and no_template:
        raise ConfigError("give --template or --no-template, not both")
    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    kind = check_paths(source, output)
    if template is not None:
        if kind != "video":
            raise ConfigError(
                f"--template is for one video; '{source}' is {'a folder' if kind == 'folder' else 'an image'}"
            )
        check_input_path(template, "template")
    effect = create_effect(
        "swap", source=[str(f) for f in faces], target_face=target_face,
        reference=str(reference) if reference else None, shape=shape, skin=skin,
        model=model, restore=restore,
    )  # fmt: skip
    try:
        report = apply_to_path(
            effect, source, output, options=AnalyzeOptions(max_faces=max_faces),
            progress=not quiet and sys.stderr.isatty(),
            require_faces=False,  # a picture with nobody to swap is copied as it is, with a warning
            template=None if no_template else (template or "auto"),
        )  # fmt: skip
    finally:
        effect.close()
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    code = print_report(console, source, output, kind, report, "swapped")
    if report.template is not None:
        console.print(f"  faces from template {report.template} (analysis skipped)")
    return code


def _swap_preparer() -> Any:
    """What stores the swap's per-face template arrays: ``SwapEffect.template_preparer()``, if it exists.

    It returns an object with ``prepare_face(frame, face) -> dict`` (and ``name`` and
    ``template_version``), usable without a source photo. Without it the template
    holds the faces only, which already skips the analysis.
    """
    from portraitfx.effects.swap import SwapEffect

    make = getattr(SwapEffect, "template_preparer", None)
    return make() if callable(make) else None


def prepare(
    video: Path = typer.Argument(..., help="Template video to analyse once."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Template file (.pfxtemplate) to write; by default the cache that 'portraitfx swap' "
        "finds by itself (in $PORTRAITFX_HOME/templates).",
    ),
    max_faces: int = typer.Option(8, "--max-faces", min=1, help="Most faces to track per frame."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Analyse a template video once (faces, tracks, occluder masks, face motion) so swaps into it skip that work.

    'portraitfx swap ... VIDEO' then finds the template by the video's content.
    A copy or a renamed file finds it too, an edited one does not.
    Use the same --max-faces for both (or give --template FILE).

    Examples:

      portraitfx swap prepare clip.mp4

      portraitfx swap -s me.jpg clip.mp4 -o clip_me.mp4

      portraitfx swap prepare clip.mp4 -o clip.pfxtemplate

      portraitfx swap -s me.jpg clip.mp4 -o clip_me.mp4 --template clip.pfxtemplate
    """
    import sys
    import time

    from rich.console import Console

    from portraitfx.errors import ConfigError
    from portraitfx.face.analyze import AnalyzeOptions
    from portraitfx.io.paths import check_input_path, check_output_path
    from portraitfx.runtime.analyze import media_kind
    from portraitfx.runtime.template import TEMPLATE_SUFFIX, Template, prepare_template

    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    check_input_path(video, "video")
    if media_kind(video) != "video":
        raise ConfigError(f"'{video}' is not a video; 'swap prepare' takes a template video")
    if output is not None:
        if output.suffix.lower() != TEMPLATE_SUFFIX:
            raise ConfigError(f"give a {TEMPLATE_SUFFIX} file for the template, got '{output.name}'")
        check_output_path(output, inputs=(video,))
    started = time.perf_counter()
    preparer = _swap_preparer()
    try:
        path = prepare_template(
            video, output, options=AnalyzeOptions(max_faces=max_faces), effect=preparer,
            progress=not quiet and sys.stderr.isatty(),
        )  # fmt: skip
    finally:
        close = getattr(preparer, "close", None)
        if callable(close):
            close()
    seconds = time.perf_counter() - started
    tpl = Template.load(path)
    size = path.stat().st_size
    shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"
    console.print(
        f"{video}: {tpl.frames} frames, {tpl.face_count} face(s) prepared in {seconds:.1f} s; "
        f"wrote {path} ({shown})"
    )
    return 0
