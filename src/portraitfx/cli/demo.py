"""``portraitfx demo``: run the main jobs on the built-in sample portrait."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(
        Path("out/demo"), "--out", "-o", help="Folder for the results (created if missing)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Analyse and stylize the built-in sample portrait and a clip made from it; write pictures to look at."""
    from rich.console import Console

    from portraitfx.runtime.demo import run_demo

    console = Console(highlight=False, quiet=quiet, soft_wrap=True)
    result = run_demo(out, log=console.print, progress=not quiet)
    console.print(f"\n[bold]Demo results in {out.resolve()}[/bold]")
    width = max((len(name) for name in result), default=0) + 1
    for name, path in result.items():
        console.print(f"  {name:<{width}} {path}")
    return 0
