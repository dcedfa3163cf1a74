"""``portraitfx swap``: put a source person's face on the faces of a photo, a video or a folder."""

from __future__ import annotations

from pathlib import Path

import typer

from portraitfx.cli._run import check_paths, print_report


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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Swap faces: the source person's face on the faces of an image, a video or a folder.

    Use it only with the consent of the people shown (see docs/responsible-use.md).

    Examples:

      portraitfx swap -s me.jpg group.jpg -o group_me.png --target-face 0

      portraitfx swap -s me.jpg -s me2.jpg clip.mp4 -o clip_me.mp4
    """
    import sys

    from rich.console import Console

    from portraitfx.effects import create_effect
    from portraitfx.errors import ConfigError
    from portraitfx.face.analyze import AnalyzeOptions
    from portraitfx.runtime.apply import apply_to_path

    if target_face is not None and reference is not None:
        raise ConfigError("give --target-face or --reference, not both")
    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    kind = check_paths(source, output)
    effect = create_effect(
        "swap", source=[str(f) for f in faces], target_face=target_face,
        reference=str(reference) if reference else None, shape=shape, skin=skin,
    )  # fmt: skip
    try:
        report = apply_to_path(
            effect, source, output, options=AnalyzeOptions(max_faces=max_faces),
            progress=not quiet and sys.stderr.isatty(),
            require_faces=False,  # a picture with nobody to swap is copied as it is, with a warning
        )  # fmt: skip
    finally:
        effect.close()
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return print_report(console, source, output, kind, report, "swapped")
