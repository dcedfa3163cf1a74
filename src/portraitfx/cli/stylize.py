"""``portraitfx stylize``: example-based stylization of the faces in an image, a video or a folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from portraitfx.cli._run import run_effect_command


class Region(str, Enum):
    face = "face"
    head = "head"
    frame = "frame"


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
    return run_effect_command(
        "stylize",
        {"style": style, "region": region.value, "strength": strength},
        source,
        output,
        max_faces=max_faces,
        quiet=quiet,
        verb="stylized",
        note=lambda: _first_use_note(style),
    )
