"""``portraitfx verify``: is this picture or video a portraitfx output?"""

from __future__ import annotations

from pathlib import Path

import typer


def verify(
    source: Path = typer.Argument(..., help="Image (JPEG, PNG, WebP, ...) or video (MP4, MOV, MKV, ...)."),
    json_out: bool = typer.Option(False, "--json", help="Print the full result as one JSON object."),
    frames: int = typer.Option(8, "--frames", min=1, max=256, help="Video frames to sample."),
) -> int:
    """Look for the invisible portraitfx watermark and provenance metadata.

    Prints one line. Exit status: 0 found (watermark or metadata), 1 not found,
    2 or more: the file cannot be read.

    The watermark survives JPEG re-compression and resizing, not cropping. An
    unmarked picture reaches the threshold with a probability below 1e-10.

    Examples:

      portraitfx verify swapped.jpg

      portraitfx verify clip.mp4 --json
    """
    import json

    from portraitfx.provenance.verify import verify_file

    report = verify_file(source, frames=frames)
    if json_out:
        typer.echo(json.dumps(report.as_dict()))
    else:
        typer.echo(report.line())
    return 0 if report.found else 1
