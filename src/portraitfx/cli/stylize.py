"""``portraitfx stylize``: example-based stylization of the faces in an image, a video or a folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class Region(str, Enum):
    face = "face"
    head = "head"
    frame = "frame"


def _check_paths(source: Path, output: Path) -> str:
    """Validate input and output before any work; return ``"folder"``, ``"image"`` or ``"video"``."""
    from portraitfx.errors import ConfigError, OutputError
    from portraitfx.io.images import SAVE_EXTENSIONS
    from portraitfx.io.paths import check_input_path, check_output_path
    from portraitfx.runtime.analyze import media_kind
    from portraitfx.runtime.apply import VIDEO_SUFFIXES

    if source.is_dir():
        if output.exists() and not output.is_dir():
            raise OutputError(f"the input is a folder, so the output must be one too; '{output}' is a file")
        if output.resolve() == source.resolve():
            raise OutputError(
                "the output folder must differ from the input folder (inputs are never overwritten)"
            )
        if not output.parent.is_dir():
            raise OutputError(f"output folder '{output.parent}' does not exist")
        return "folder"
    check_input_path(source)
    check_output_path(output, inputs=(source,))
    kind = media_kind(source)
    suffix = output.suffix.lower()
    if kind == "image" and suffix not in SAVE_EXTENSIONS:
        raise ConfigError(
            f"'{source.name}' is an image; give an image output ({', '.join(SAVE_EXTENSIONS)}), got '{output.name}'"
        )
    if kind == "video" and suffix not in VIDEO_SUFFIXES:
        raise ConfigError(
            f"'{source.name}' is a video; give a video output ({', '.join(sorted(VIDEO_SUFFIXES))}), "
            f"got '{output.name}'"
        )
    return kind


def _first_use_note(style: str) -> str | None:
    """A note when a built-in style is about to be prepared (a few seconds, once)."""
    from portraitfx.effects.stylize import builtin
    from portraitfx.effects.stylize.pack import styles_dir

    if style not in builtin.BUILTIN_STYLES:
        return None
    version = getattr(builtin, "RECIPE_VERSION", None)
    if version is not None and (styles_dir() / f"builtin-{style}-v{version}.pfxstyle").is_file():
        return None
    return f"preparing built-in style '{style}' (first use only) ..."


def stylize(
    source: Path = typer.Argument(..., help="Image, video (audio is kept) or folder of them."),
    style: str = typer.Option(
        ...,
        "--style",
        "-s",
        help="Built-in style (pencil, watercolour, oil, ink), an installed style's name or a .pfxstyle file.",
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Output file (same kind as the input) or, for a folder, output folder."
    ),
    region: Region = typer.Option(
        Region.face, help="What to stylize: the face, the whole head (hair, neck) or the whole frame."
    ),
    strength: float = typer.Option(
        1.0, min=0.0, max=1.0, help="Blend of the stylized face over the original (0..1)."
    ),
    max_faces: int = typer.Option(8, "--max-faces", min=1, help="Most faces to stylize per image or frame."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Stylize the faces in a photo, a video or a folder after an example artwork (FaceBlit).

    Examples:

      portraitfx stylize portrait.jpg -s pencil -o portrait_pencil.png

      portraitfx stylize clip.mp4 -s my-painting.pfxstyle -o clip_painted.mp4 --region head

      portraitfx stylize photos/ -s watercolour -o photos_watercolour/
    """
    import sys

    from rich.console import Console

    from portraitfx.effects import create_effect
    from portraitfx.face.analyze import AnalyzeOptions
    from portraitfx.runtime.apply import apply_to_path

    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    kind = _check_paths(source, output)
    note = _first_use_note(style)
    if note:
        console.print(note)
    effect = create_effect("stylize", style=style, region=region.value, strength=strength)
    try:
        report = apply_to_path(
            effect,
            source,
            output,
            options=AnalyzeOptions(max_faces=max_faces),
            progress=not quiet and sys.stderr.isatty(),
        )
    finally:
        effect.close()

    if kind == "folder":
        console.print(
            f"{source}: {len(report.outputs)} file(s) written, {len(report.skipped)} skipped (already done), "
            f"{len(report.failed)} failed; {report.frames} frame(s), {report.faces} face(s) "
            f"in {report.seconds:.1f} s"
        )
        if report.outputs:
            console.print(f"  wrote to {output}")
        for item, message in report.failed:
            msg = " ".join(message.split())
            print(f"failed: {item.name}: {msg}", file=sys.stderr)
        return 1 if report.failed else 0
    if kind == "video":
        rate = report.seconds / report.media_seconds if report.media_seconds else 0.0
        console.print(
            f"{source}: {report.frames} frames, {report.faces} face(s) stylized in {report.seconds:.1f} s "
            f"({rate:.2f} s per second of video)"
        )
    else:
        console.print(f"{source}: {report.faces} face(s) stylized in {report.seconds * 1000:.0f} ms")
    for out in report.outputs:
        console.print(f"  wrote {out}")
    return 0
