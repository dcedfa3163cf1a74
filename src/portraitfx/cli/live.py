"""``portraitfx live``: an effect on a camera or a video played in real time, with bounded latency."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class LiveEffect(str, Enum):
    stylize = "stylize"
    swap = "swap"


def live(
    camera: int | None = typer.Option(None, "--camera", "-c", help="Camera index (0 = the first camera)."),
    input_: Path | None = typer.Option(
        None, "--input", "-i", help="A video file played in real time instead of a camera."
    ),
    effect: LiveEffect = typer.Option(LiveEffect.stylize, "--effect", "-e", help="The effect to run."),
    styles: list[str] = typer.Option(
        [],
        "--style",
        "-s",
        help="stylize: a style (repeat for several; 'n' or space switches). Default: all built-in.",
    ),
    sources: list[Path] = typer.Option(
        [], "--source", help="swap: a photo of the person to put in (repeat for more photos of them)."
    ),
    record: Path | None = typer.Option(
        None, "--record", help="Also record what is shown to this video file."
    ),
    window: bool = typer.Option(True, "--window/--no-window", help="Show a window (needs a display)."),
    virtual_camera: bool = typer.Option(
        False,
        "--virtual-camera",
        help="Send the frames to a virtual webcam (needs pyvirtualcam and a device).",
    ),
    seconds: float | None = typer.Option(None, "--seconds", min=0.0, help="Stop after this many seconds."),
    loop: bool = typer.Option(False, "--loop", help="--input: play the video again and again."),
    max_faces: int = typer.Option(2, "--max-faces", min=1, help="Most faces to track."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Run an effect live on a camera (or a video played in real time) and show it.

    When the effect is slower than the source, frames are dropped rather than
    queued, so what is shown is never far behind. Keys in the window: n or space
    for the next style, q or Esc to quit. Swaps are watermarked like any other
    output; use them only with the consent of the people shown.

    Examples:

      portraitfx live --camera 0 -s pencil -s ink

      portraitfx live --input clip.mp4 -s watercolour --no-window --record live.mp4 --seconds 10

      portraitfx live --camera 0 --effect swap --source me.jpg --virtual-camera
    """
    from rich.console import Console

    from portraitfx.effects import create_effect
    from portraitfx.errors import ConfigError
    from portraitfx.io.paths import check_input_path
    from portraitfx.runtime import live as L

    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    if (camera is None) == (input_ is None):
        raise ConfigError("give a camera (--camera N) or a video (--input FILE), one of them")
    if effect is LiveEffect.swap and not sources:
        raise ConfigError("--effect swap needs a --source photo")
    if effect is LiveEffect.stylize and sources:
        raise ConfigError("--source is for --effect swap")
    if not window and record is None and not virtual_camera:
        raise ConfigError(
            "nothing would show the frames: drop --no-window, or add --record FILE or --virtual-camera"
        )
    if window and not L.has_display():
        raise ConfigError(
            "no display to open a window on: use --no-window with --record FILE or --virtual-camera"
        )
    if input_ is not None:
        check_input_path(input_)
        source: L._ThreadedSource = L.FileSource(input_, loop=loop)
    else:
        source = L.CameraSource(int(camera or 0))
    sinks: list = []
    if record is not None:
        sinks.append(L.RecordSink(record, fps=source.fps))
    if window:
        sinks.append(L.WindowSink())
    if virtual_camera:
        sinks.append(L.VirtualCameraSink(source.size, source.fps))
    if effect is LiveEffect.swap:
        effects = [("swap", create_effect("swap", source=[str(p) for p in sources]))]
    else:
        from portraitfx.effects.stylize.builtin import BUILTIN_STYLES

        names = styles or sorted(BUILTIN_STYLES)
        effects = [(name, create_effect("stylize", style=name)) for name in names]
    try:
        stats = L.LiveSession(source, effects, sinks, max_faces=max_faces).run(seconds=seconds)
    finally:
        for _, e in effects:
            e.close()
    console.print(
        f"{stats.frames_shown} frames shown in {stats.seconds:.1f} s ({stats.fps:.1f} fps), "
        f"{stats.frames_dropped} of {stats.frames_in} dropped to keep up; latency "
        f"{stats.latency_ms[0]:.0f} ms typical, {stats.latency_ms[1]:.0f} ms at the 95th percentile"
    )
    if record is not None:
        console.print(f"  recorded {record}")
    return 0
