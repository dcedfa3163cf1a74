"""Make the pictures of docs/stylize.md from a demo run.

Runs ``portraitfx demo`` into a temporary folder (with a temporary
``PORTRAITFX_HOME``, so the built-in styles are built fresh) and writes:

* ``docs/images/stylize.png``: the sample portrait and the four built-in styles;
* ``docs/images/stylize_styles.png``: each style's exemplar beside its result;
* ``docs/images/stylize_video.png``: frames of the synthetic clip, before and after ``pencil``;
* ``docs/images/stylize_show.png``: ``portraitfx style show pencil -o ...`` (exemplar and mesh).

    .venv/bin/python tools/make_stylize_docs_images.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

DOCS = Path(__file__).resolve().parents[1] / "docs" / "images"
MAX_BYTES = 600_000


def _save(name: str, image: np.ndarray) -> None:
    """Save a PNG under docs/images, halving the size until it is under MAX_BYTES."""
    from portraitfx.io.images import encode_image

    while True:
        data = encode_image(image, "png")
        if len(data) <= MAX_BYTES or image.shape[1] < 400:
            break
        image = cv2.resize(
            image, (image.shape[1] * 3 // 4, image.shape[0] * 3 // 4), interpolation=cv2.INTER_AREA
        )
    (DOCS / name).write_bytes(data)
    print(f"wrote docs/images/{name}: {image.shape[1]}x{image.shape[0]}, {len(data) // 1000} kB")


def _frames(path: Path, picks: list[int]) -> list[np.ndarray]:
    from portraitfx.io.video import VideoReader

    out = []
    with VideoReader(path) as reader:
        for frame in reader:
            if frame.index in picks:
                out.append(frame.image)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as tmp:
        os.environ["PORTRAITFX_HOME"] = home
        from portraitfx.cli.main import main as cli
        from portraitfx.io.images import load_image
        from portraitfx.runtime.demo import _label

        demo = Path(tmp) / "demo"
        if cli(["demo", "--out", str(demo), "--quiet"]) != 0:
            sys.exit("the demo failed")
        _save("stylize.png", load_image(demo / "stylize.png"))
        _save("stylize_styles.png", load_image(demo / "stylize_styles.png"))
        picks = [0, 30, 60, 89]
        before = _frames(demo / "sample_clip.mp4", picks)
        after = _frames(demo / "stylize.mp4", picks)
        top = np.concatenate([_label(f, f"input, frame {i}") for f, i in zip(before, picks, strict=True)], 1)
        bottom = np.concatenate(
            [_label(f, f"pencil, frame {i}") for f, i in zip(after, picks, strict=True)], 1
        )
        strip = np.concatenate([top, bottom], 0)
        _save(
            "stylize_video.png",
            cv2.resize(strip, (strip.shape[1] // 2, strip.shape[0] // 2), interpolation=cv2.INTER_AREA),
        )
        show = Path(tmp) / "show.png"
        if cli(["style", "show", "pencil", "-o", str(show)]) != 0:
            sys.exit("style show failed")
        _save("stylize_show.png", load_image(show))


if __name__ == "__main__":
    main()
