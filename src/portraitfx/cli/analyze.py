"""``portraitfx analyze``: faces, mesh, pose and ids in an image or a video."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from portraitfx.face.analyze import AnalyzeOptions


class Detector(str, Enum):
    auto = "auto"
    short = "short"
    full = "full"


def analyze(
    source: Path = typer.Argument(..., help="Image (JPEG, PNG, WebP, ...) or video (MP4, MOV, MKV, ...)."),
    json_out: Path | None = typer.Option(
        None, "--json", "-j", help="Write the result as JSON here ('-' prints it)."
    ),
    overlay: Path | None = typer.Option(
        None,
        "--overlay",
        "-o",
        help="Write an annotated copy here (image: .png/.jpg; video: .mp4/.mov/.mkv).",
    ),
    max_faces: int = typer.Option(8, "--max-faces", min=1, help="Most faces to analyse."),
    detector: Detector = typer.Option(
        Detector.auto, help="Face detector: short (selfies), full (up to ~5 m) or auto (full, then short)."
    ),
    min_score: float = typer.Option(0.5, "--min-score", min=0.0, max=1.0, help="Least detection confidence."),
    min_face_size: float = typer.Option(
        24.0, "--min-face-size", min=0.0, help="Skip faces smaller than this (px)."
    ),
    embed: bool = typer.Option(False, "--embed", help="Also compute 128-d identity embeddings (images)."),
    landmarks: bool | None = typer.Option(
        None,
        "--landmarks/--no-landmarks",
        help="Include 478-point meshes in the JSON [default: images yes, videos no].",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Find faces and measure them: boxes, 478-point mesh with irises, head pose, track ids.

    Examples:

      portraitfx analyze portrait.jpg --overlay annotated.png --json faces.json

      portraitfx analyze clip.mp4 --json faces.json --overlay tracked.mp4
    """
    import json
    import sys

    from rich.console import Console

    from portraitfx.runtime.analyze import analyze_file

    options = AnalyzeOptions(
        max_faces=max_faces,
        detector=detector.value,  # type: ignore[arg-type]
        min_score=min_score,
        min_face_size=min_face_size,
        embed=embed,
    )
    to_stdout = json_out is not None and str(json_out) == "-"
    from portraitfx.errors import TruncatedVideoError

    try:
        report = analyze_file(
            source,
            json_path=None if to_stdout else json_out,
            overlay_path=overlay,
            options=options,
            landmarks=landmarks,
            progress=not quiet and sys.stderr.isatty(),
        )
    except TruncatedVideoError as err:
        partial = getattr(err, "report", None)
        if to_stdout and partial is not None:  # what was analysed before the damage still goes out
            sys.stdout.write(json.dumps(partial.data) + "\n")
        raise
    if to_stdout:
        sys.stdout.write(json.dumps(report.data) + "\n")
    console = Console(stderr=to_stdout, highlight=False, soft_wrap=True)
    if not quiet:
        if report.kind == "image":
            data = report.data
            console.print(
                f"{source}: {report.faces} face(s) in {data['width']}x{data['height']} "
                f"({report.seconds * 1000:.0f} ms)"
            )
            for i, face in enumerate(data["faces"]):
                p = face["pose"]
                box = ", ".join(f"{v:.0f}" for v in face["bbox"])
                console.print(
                    f"  face {i}: score {face['score']:.2f}  box [{box}]  "
                    f"yaw {p['yaw']:+.1f} pitch {p['pitch']:+.1f} roll {p['roll']:+.1f}"
                )
            if data.get("skipped_small"):
                console.print(
                    f"  skipped {data['skipped_small']} face(s) smaller than {min_face_size:.0f} px"
                )
        else:
            rate = report.seconds / report.media_seconds if report.media_seconds else 0.0
            console.print(
                f"{source}: {report.frames} frames, {report.faces} track(s) "
                f"in {report.seconds:.1f} s ({rate:.2f} s per second of video)"
            )
        for out in report.outputs:
            console.print(f"  wrote {out}")
    if report.faces == 0:
        print(f"warning: no face found in '{source}'", file=sys.stderr)
        return 3
    return 0
