"""``portraitfx style``: build, install, list and inspect styles for ``portraitfx stylize``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from portraitfx.effects.stylize.pack import StylePack

app = typer.Typer(
    name="style",
    help="Build a style from a stylised portrait, list the styles, show one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _console(quiet: bool = False) -> Any:
    from rich.console import Console

    return Console(highlight=False, markup=False, quiet=quiet, soft_wrap=True)


def _is_path(text: str) -> bool:
    import os

    return text.endswith(".pfxstyle") or os.sep in text or (os.altsep is not None and os.altsep in text)


def _builtin_cache(name: str) -> Path | None:
    from portraitfx.effects.stylize import builtin
    from portraitfx.effects.stylize.pack import styles_dir

    version = getattr(builtin, "RECIPE_VERSION", None)
    path = styles_dir() / f"builtin-{name}-v{version}.pfxstyle"
    return path if version is not None and path.is_file() else None


def _eye_distance(pack: StylePack) -> float:
    """Pixels between the iris centres of the style face, in its canonical frame."""
    import numpy as np

    if "eye_distance" in pack.meta:
        return float(pack.meta["eye_distance"])
    lm = np.asarray(pack.landmarks, np.float32)
    return float(np.linalg.norm(lm[473, :2] - lm[468, :2]))


def _where(style: str) -> tuple[str, Path | None]:
    """Where ``style`` (as given on the command line) comes from: a label and its file, if any."""
    from portraitfx.effects.stylize.builtin import BUILTIN_STYLES
    from portraitfx.effects.stylize.pack import styles_dir

    if _is_path(style):
        return "file", Path(style).expanduser()
    if style in BUILTIN_STYLES:
        return "built-in", _builtin_cache(style)
    return "installed", styles_dir() / f"{style}.pfxstyle"


# -- landmarks -----------------------------------------------------------------------------


def read_landmarks(path: Path, image_shape: tuple[int, ...]) -> np.ndarray:
    """Read hand-made landmarks for a style image.

    ``path`` holds JSON: either a list of 478 ``[x, y]`` or ``[x, y, z]`` points in
    the image's pixels, or a ``portraitfx analyze --json`` document of that image
    (its ``faces[0].landmarks`` are used).

    Raises:
        InputError: unreadable file, wrong layout, or points that do not fit the image.
    """
    import json

    import numpy as np

    from portraitfx.errors import InputError
    from portraitfx.io.paths import check_input_path

    src = check_input_path(path, "landmarks file")
    try:
        data = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"landmarks file '{src}' is not readable JSON ({type(err).__name__}: {err})"
        ) from None
    h, w = image_shape[:2]
    if isinstance(data, dict):
        if data.get("kind") == "video":
            raise InputError(
                f"'{src}' describes a video; run `portraitfx analyze STYLE_IMAGE --json FILE` on the style image"
            )
        faces = data.get("faces")
        if not isinstance(faces, list) or not faces or not isinstance(faces[0], dict):
            raise InputError(
                f"'{src}' lists no faces; expected 478 [x, y] points or `portraitfx analyze --json` output"
            )
        points = faces[0].get("landmarks")
        if points is None:
            raise InputError(f"'{src}' has no landmarks (it was written with --no-landmarks)")
        size = (data.get("width"), data.get("height"))
        if None not in size and tuple(size) != (w, h):
            raise InputError(
                f"'{src}' was measured on a {size[0]}x{size[1]} image but the style image is {w}x{h}"
            )
    elif isinstance(data, list):
        points = data
    else:
        raise InputError(
            f"'{src}' must hold a list of 478 [x, y] points or `portraitfx analyze --json` output"
        )
    try:
        lm = np.asarray(points, np.float32)
    except (TypeError, ValueError):
        raise InputError(f"'{src}': landmarks must be numbers, [x, y] or [x, y, z] per point") from None
    if lm.ndim != 2 or lm.shape[0] != 478 or lm.shape[1] not in (2, 3):
        raise InputError(
            f"'{src}': expected 478 points of [x, y] or [x, y, z], got an array of shape {lm.shape}"
        )
    if not np.isfinite(lm).all():
        raise InputError(f"'{src}': landmarks contain NaN or infinite values")
    margin_x, margin_y = 0.1 * w, 0.1 * h
    inside = (
        (lm[:, 0] >= -margin_x)
        & (lm[:, 0] <= w + margin_x)
        & (lm[:, 1] >= -margin_y)
        & (lm[:, 1] <= h + margin_y)
    )
    if inside.mean() < 0.9:
        raise InputError(
            f"'{src}': most landmarks fall outside the {w}x{h} style image; they must be in its pixel coordinates"
        )
    return lm


# -- commands ------------------------------------------------------------------------------


@app.command("build")
def build(
    image: Path = typer.Argument(
        ..., help="The stylised portrait (a painting, drawing, ...), facing the camera."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Style file to write (NAME.pfxstyle)."),
    name: str | None = typer.Option(
        None, "--name", "-n", help="Style name [default: the output's or the image's file name]."
    ),
    landmarks: Path | None = typer.Option(
        None,
        "--landmarks",
        help="JSON with the face's 478 points (hand-corrected), or `portraitfx analyze --json` output.",
    ),
    size: int = typer.Option(512, "--size", help="Side of the style's face frame in pixels (128..2048)."),
    install: bool = typer.Option(
        False, "--install", help="Also install the style, so `stylize -s NAME` finds it by name."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> int:
    """Prepare a stylised portrait as a style (a .pfxstyle file).

    The picture should show one face, roughly frontal, at least ~40 px between the
    eyes (larger keeps more detail). Without --landmarks the face is found
    automatically; for artworks where detection is off, correct the points of
    `portraitfx analyze ART --json faces.json` and pass --landmarks faces.json.

    Examples:

      portraitfx style build my_painting.jpg -o my-painting.pfxstyle

      portraitfx style build my_painting.jpg --name my-painting --install
    """
    from portraitfx.effects.stylize.builtin import BUILTIN_STYLES
    from portraitfx.effects.stylize.pack import STYLE_SUFFIX, build_style, save_style, styles_dir
    from portraitfx.errors import ConfigError
    from portraitfx.io.images import load_image
    from portraitfx.io.paths import check_input_path, check_output_path

    console = _console(quiet)
    source = check_input_path(image)
    if output is None and not install:
        raise ConfigError("say where the style goes: -o NAME.pfxstyle, --install, or both")
    if output is not None:
        if output.suffix != STYLE_SUFFIX:
            raise ConfigError(f"style files end in {STYLE_SUFFIX}, got '{output.name}'")
        check_output_path(output, inputs=(source,))
    name = name or (output.stem if output is not None else source.stem)
    if install:
        if not _NAME.match(name) or name.startswith("builtin-"):
            raise ConfigError(
                f"cannot install a style named {name!r}: use letters, digits, '.', '-' or '_' "
                "(up to 64, not starting with 'builtin-'); set it with --name"
            )
        if name in BUILTIN_STYLES:
            raise ConfigError(f"{name!r} is a built-in style; choose another --name")

    picture = load_image(source)
    points = read_landmarks(landmarks, picture.shape) if landmarks is not None else None
    pack = build_style(picture, name=name, landmarks=points, size=size, source=f"'{source.name}'")
    written: list[Path] = []
    if output is not None:
        written.append(save_style(pack, output))
    if install:
        target = styles_dir() / f"{name}{STYLE_SUFFIX}"
        target.parent.mkdir(parents=True, exist_ok=True)
        replaced = target.is_file()
        if output is None or target.resolve() != output.resolve():
            written.append(save_style(pack, target))
        if replaced:
            console.print(f"replaced the installed style {name!r}")

    face = float(pack.meta.get("source_eye_distance", _eye_distance(pack)))
    scale = _eye_distance(pack) / max(face, 1e-6)
    console.print(
        f"style {name!r} built from {source} in {float(pack.meta.get('build_seconds', 0.0)):.2f} s: "
        f"face {face:.0f} px between the eyes, stored at {pack.size}x{pack.size}"
    )
    if scale > 1.5:
        console.print(
            f"  note: the face was enlarged {scale:.1f}x to fit; a larger picture of it would keep more detail"
        )
    for path in written:
        console.print(f"  wrote {path}")
    if install:
        console.print(f"  use it with: portraitfx stylize INPUT -s {name} -o OUTPUT")
    return 0


@app.command("list")
def list_(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print the names only."),
) -> int:
    """List the built-in and installed styles, and where each comes from."""
    from portraitfx.effects.stylize.builtin import BUILTIN_STYLES
    from portraitfx.effects.stylize.pack import list_styles

    console = _console()
    names = list_styles()
    width = max((len(n) for n in names), default=0) + 2
    for name in names:
        if quiet:
            console.print(name)
        elif name in BUILTIN_STYLES:
            cached = _builtin_cache(name)
            state = f"cached in {cached}" if cached else "prepared on first use"
            console.print(f"{name:<{width}}built-in ({state})")
        else:
            console.print(f"{name:<{width}}installed: {_where(name)[1]}")
    return 0


def preview(pack: StylePack) -> np.ndarray:
    """The exemplar and, beside it, the exemplar with its mesh outline drawn."""
    import numpy as np

    from portraitfx.face.draw import draw_faces
    from portraitfx.face.pose import estimate_pose
    from portraitfx.face.types import Face

    lm = np.asarray(pack.landmarks, np.float32)
    pts = lm[:468, :2]
    face = Face(
        bbox=np.concatenate([pts.min(0), pts.max(0)]).astype(np.float32),
        score=1.0,
        landmarks=lm,
        pose=estimate_pose(lm),
    )
    drawn = draw_faces(pack.exemplar, [face], boxes=False, labels=False, axes=False)
    gap = np.full((pack.size, max(4, pack.size // 64), 3), 255, np.uint8)
    return np.concatenate([pack.exemplar, gap, drawn], axis=1)


@app.command("show")
def show(
    style: str = typer.Argument(..., help="Built-in or installed style name, or a .pfxstyle file."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write a preview here (.png/.jpg): the exemplar and its mesh."
    ),
) -> int:
    """Print a style's facts (size, source, build time, eye distance); optionally write a preview."""
    from portraitfx.effects.stylize.pack import load_style
    from portraitfx.io.images import save_image
    from portraitfx.io.paths import check_output_path

    console = _console()
    if output is not None:
        check_output_path(output)
    pack = load_style(style)
    kind, path = _where(style)
    meta = pack.meta
    console.print(f"{pack.name} ({kind})")
    if path is not None and path.is_file():
        console.print(f"  file:    {path}")
    sizes = [int(lv.exemplar.shape[0]) for lv in getattr(pack, "levels", [])][1:]
    extra = f" (also {', '.join(map(str, sizes))} px for smaller faces)" if sizes else ""
    console.print(f"  size:    {pack.size}x{pack.size}{extra}")
    console.print(f"  source:  {meta.get('source', 'unknown')}")
    built = meta.get("built", "unknown")
    secs = meta.get("build_seconds")
    version = meta.get("portraitfx")
    line = f"  built:   {built}"
    if secs is not None:
        line += f" in {float(secs):.2f} s"
    if version:
        line += f" (portraitfx {version})"
    console.print(line)
    eyes = f"  eyes:    {_eye_distance(pack):.0f} px apart in the style frame"
    if "source_eye_distance" in meta:
        eyes += f" ({float(meta['source_eye_distance']):.0f} px in the source picture)"
    console.print(eyes)
    if output is not None:
        save_image(output, preview(pack))
        console.print(f"  wrote {output}")
    return 0
