"""Shared plumbing of the effect commands (stylize, swap): path checks and the summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def check_paths(source: Path, output: Path) -> str:
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


def print_report(console: Any, source: Path, output: Path, kind: str, report: Any, verb: str) -> int:
    """Print what an effect run did; return the exit code (1 when files of a folder failed)."""
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
            f"{source}: {report.frames} frames, {report.faces} face(s) {verb} in {report.seconds:.1f} s "
            f"({rate:.2f} s per second of video)"
        )
    else:
        console.print(f"{source}: {report.faces} face(s) {verb} in {report.seconds * 1000:.0f} ms")
    for out in report.outputs:
        console.print(f"  wrote {out}")
    return 0


def run_effect_command(
    name: str,
    options: dict[str, Any],
    source: Path,
    output: Path,
    *,
    max_faces: int,
    quiet: bool,
    verb: str,
    note: Any = None,
) -> int:
    """The body of an effect command: check the paths, build the effect, run it over an
    image, a video or a folder with a progress bar, print what was done.

    ``note``: a callable returning a line to print before the work starts (or None).
    """
    from rich.console import Console

    from portraitfx.effects import create_effect
    from portraitfx.face.analyze import AnalyzeOptions
    from portraitfx.runtime.apply import apply_to_path

    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    kind = check_paths(source, output)
    line = note() if note is not None else None
    if line:
        console.print(line)
    effect = create_effect(name, **options)
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
    return print_report(console, source, output, kind, report, verb)
