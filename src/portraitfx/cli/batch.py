"""``portraitfx batch``: one effect over a folder (or a glob) of images and videos, on Ray workers.

The work is :func:`portraitfx.runtime.batch.run_batch`; this module parses the
effect's options (``--style``, ``--source``, ``--option key=value`` typed after the
effect's own option types) and prints the summary. Exit status: 0 when every
input has its output, 1 when some failed (in this run, or in an earlier one and
not retried), 2 for usage errors (bad option, unknown effect, no inputs).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import typer

MAX_LISTED = 20  # failures listed in the summary; the manifest has them all
MAX_WARNINGS = 10


# -- effect options from the command line ------------------------------------------------------


def effect_option_types(effect: str) -> dict[str, Any]:
    """The options ``create_effect(effect, ...)`` takes and their types.

    That is the effect constructor's named arguments (``style``, ``source``) and the
    fields of its options dataclass (``region``, ``strength``, ...).
    """
    from portraitfx.effects.base import _REGISTRY, list_effects

    list_effects()  # loads the built-in effects
    factory = _REGISTRY[effect]
    init = factory.__init__ if isinstance(factory, type) else factory
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # unresolvable annotations: take every value as it looks
        hints = {}
    found: dict[str, Any] = {}
    for name, param in inspect.signature(init).parameters.items():
        if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        hint = hints.get(name, Any)
        options_class = next(
            (
                a
                for a in (hint, *typing.get_args(hint))
                if isinstance(a, type) and dataclasses.is_dataclass(a)
            ),
            None,
        )
        if name == "options" and options_class is not None:
            field_hints = typing.get_type_hints(options_class)
            for f in dataclasses.fields(options_class):
                found[f.name] = field_hints.get(f.name, Any)
            continue
        found[name] = hint
    return found


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _as_json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_value(key: str, text: str, hint: Any) -> Any:
    """``text`` converted to ``hint`` (bool, int, float, str, a Literal, an optional of those, ``Any``).

    Raises:
        ConfigError: the text is not a value of that type.
    """
    from portraitfx.errors import ConfigError

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return _as_json_or_text(text)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return parse_value(key, text, arg)
                except ConfigError:
                    continue
        raise ConfigError(f"option {key}: '{text}' is not a {_type_name(hint)}")
    if origin is Literal:
        if text in args:
            return text
        raise ConfigError(f"option {key} must be one of {', '.join(map(str, args))}, got '{text}'")
    if hint is bool:
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ConfigError(f"option {key} takes true or false, got '{text}'")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ConfigError(
                f"option {key} takes a number{'' if hint is float else ' (whole)'}, got '{text}'"
            ) from None
    if hint is str or hint is os.PathLike or origin is os.PathLike:
        return text
    raise ConfigError(f"option {key} ({_type_name(hint)}) cannot be set from the command line")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def parse_options(effect: str, pairs: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` as the effect's typed options.

    Raises:
        ConfigError: no ``=``, an unknown key (valid keys are named) or a bad value.
    """
    from portraitfx.errors import ConfigError

    known = effect_option_types(effect)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"give --option as key=value, got '{pair}'")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ConfigError(f"{effect} has no option '{key}'; {hint}valid: {', '.join(sorted(known))}")
        out[key] = parse_value(key, text, known[key])
    return out


# -- the summary -------------------------------------------------------------------------------


def _shown(item: Any, out_dir: Path) -> str:
    try:
        return item.output.relative_to(out_dir).as_posix()
    except ValueError:
        return item.output.name


def print_summary(console: Any, report: Any, effect: str, out_dir: Path) -> None:
    """The summary table, throughput, and the failures (with their messages)."""
    from rich.table import Table

    table = Table(title=f"portraitfx batch: {effect}", title_justify="left")
    table.add_column("files")
    table.add_column("count", justify="right")
    table.add_row("done", str(len(report.done)))
    table.add_row("failed", str(len(report.failed)))
    table.add_row("skipped: done in an earlier run", str(len(report.skipped) - len(report.failed_earlier)))
    table.add_row("skipped: failed in an earlier run", str(len(report.failed_earlier)))
    console.print(table)
    processed = report.done + report.failed
    if processed:
        frames = sum(i.frames for i in report.done)
        faces = sum(i.faces for i in report.done)
        console.print(
            f"{len(processed)} file(s), {frames} frame(s), {faces} face(s) in {report.seconds:.1f} s "
            f"with {report.workers} worker(s): {report.throughput:.2f} files/s "
            f"(after {report.setup_seconds:.1f} s of start-up)"
        )
    else:
        console.print("nothing to do: every file was finished by an earlier run")
    console.print(f"outputs in {out_dir}, manifest {report.manifest}")
    failures = [(i, "this run") for i in report.failed] + [(i, "earlier run") for i in report.failed_earlier]
    if failures:
        listing = Table(title="failures", title_justify="left")
        listing.add_column("file")
        listing.add_column("error")
        listing.add_column("when")
        for item, when in failures[:MAX_LISTED]:
            listing.add_row(_shown(item, out_dir), item.error or "failed", when)
        console.print(listing)
        if len(failures) > MAX_LISTED:
            console.print(f"... and {len(failures) - MAX_LISTED} more: see the manifest")
        if report.failed_earlier:
            console.print("files that failed in an earlier run are tried again with --retry-failed")


# -- the command -------------------------------------------------------------------------------


def batch(
    inputs: str = typer.Argument(
        ...,
        metavar="IN_DIR_OR_GLOB",
        help="Folder (its images and videos, not subfolders), a quoted glob ('photos/**/*.jpg') or one file.",
    ),
    out_dir: Path = typer.Argument(..., metavar="OUT_DIR", help="Output folder; created if missing."),
    effect: str = typer.Option(..., "--effect", "-e", help="Effect to apply: stylize or swap."),
    style: str | None = typer.Option(
        None, "--style", "-s", help="stylize: built-in style (pencil, watercolour, oil, ink), name or file."
    ),
    source: list[Path] | None = typer.Option(
        None, "--source", help="swap: photo of the person to put in (repeat for more photos of them)."
    ),
    option: list[str] | None = typer.Option(
        None,
        "--option",
        "-O",
        metavar="KEY=VALUE",
        help="An effect option (repeatable), e.g. region=head, strength=0.8, target_face=0.",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        min=1,
        help="Worker processes (default: the CPU count, of the cluster with --address).",
    ),
    address: str | None = typer.Option(
        None, "--address", help="Join a running Ray cluster (auto, ray://HEAD:10001); default: a local Ray."
    ),
    suffix: str | None = typer.Option(None, "--suffix", help="Extension of image outputs, e.g. .png."),
    max_faces: int = typer.Option(8, "--max-faces", min=1, help="Most faces per image or frame."),
    require_faces: bool = typer.Option(
        False,
        "--require-faces",
        help="A file without a face fails (default: copied unchanged, with a warning).",
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Try again the files an earlier run recorded as failed."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress bar or summary; failures still go to stderr."
    ),
) -> int:
    """Apply an effect to every image and video of a folder on Ray workers; re-run to resume.

    Each worker process loads the effect's models once. A file that fails (damaged,
    no face with --require-faces) is recorded and the run goes on. OUT_DIR gets
    portraitfx-batch.jsonl, one line per finished file; a second run skips what is
    done (or failed: --retry-failed). Exit status: 0 when every file has its output,
    1 when some failed (now or in an earlier run), 2 for usage errors.

    Examples:

      portraitfx batch photos/ out/ --effect stylize -s pencil

      portraitfx batch 'shoot/**/*.jpg' out/ -e stylize -s watercolour -O region=head --suffix .png

      portraitfx batch clips/ out/ --effect swap --source me.jpg --source me2.jpg -O target_face=0

      portraitfx batch photos/ out/ -e stylize -s ink --address auto --workers 16
    """
    from rich.console import Console

    from portraitfx.effects import list_effects
    from portraitfx.errors import ConfigError
    from portraitfx.runtime.batch import run_batch

    known = list_effects()
    if effect not in known:
        close = difflib.get_close_matches(effect, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown effect '{effect}'{hint} (effects: {', '.join(known)})")
    options = parse_options(effect, list(option or []))
    takes = effect_option_types(effect)
    for flag, key, value in (("--style", "style", style), ("--source", "source", source)):
        if value:
            if key not in takes:
                raise ConfigError(f"{flag} is not an option of {effect}")
            options[key] = [str(p) for p in value] if isinstance(value, list) else value
    if effect == "swap" and not options.get("source"):
        raise ConfigError("swap needs --source PHOTO (the person to put in)")
    console = Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)
    if effect == "stylize":
        from portraitfx.cli.stylize import _first_use_note

        note = _first_use_note(str(options.get("style", "pencil")))
        if note:
            console.print(note)
    report = run_batch(
        inputs, out_dir, effect, options, workers=workers, address=address,
        progress=not quiet and sys.stderr.isatty(), suffix=suffix, require_faces=require_faces,
        max_faces=max_faces, retry_failed=retry_failed,
    )  # fmt: skip
    out = Path(out_dir).expanduser()
    if not quiet:
        warnings = [i for i in report.done if i.warning]
        for item in warnings[:MAX_WARNINGS]:
            print(f"warning: {_shown(item, out)}: {item.warning}", file=sys.stderr)
        if len(warnings) > MAX_WARNINGS:
            print(f"warning: {len(warnings) - MAX_WARNINGS} more warnings in the manifest", file=sys.stderr)
    print_summary(console, report, effect, out)
    if quiet:
        for item in report.failed + report.failed_earlier:
            print(f"failed: {_shown(item, out)}: {item.error}", file=sys.stderr)
    return 0 if report.ok else 1
