"""Make the before/after pictures of docs/hair.md from the test photos.

    .venv/bin/python tools/hair_pictures.py [--out docs/images]

Writes ``hair-edits.jpg`` (each model-free edit on three people, head crops) and
``hair-analysis.png`` (what the edits see: matte, hairline, density).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (255, 255, 255), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    from portraitfx.effects.hair import (
        add_bangs,
        adjust_hairline,
        analyze_hair,
        fill_sparse,
        recolor,
        rgb_to_lab,
    )
    from portraitfx.effects.hair.colors import parse_colour
    from portraitfx.effects.hair.preview import analysis_picture
    from portraitfx.face.analyze import FaceAnalyzer
    from portraitfx.io.images import load_image, save_image

    data = ROOT / "tests" / "data"
    edits = [
        ("original", None),
        ("recolor auburn", lambda img, a: recolor(img, a, rgb_to_lab(parse_colour("auburn")))),
        ("recolor #c02060", lambda img, a: recolor(img, a, rgb_to_lab(parse_colour("#c02060")))),
        ("recolor platinum", lambda img, a: recolor(img, a, rgb_to_lab(parse_colour("platinum")))),
        ("hairline +0.3", lambda img, a: adjust_hairline(img, a, 0.3)),
        ("hairline -0.25", lambda img, a: adjust_hairline(img, a, -0.25)),
        ("fill", lambda img, a: fill_sparse(img, a)),
        ("bangs 0.75", lambda img, a: add_bangs(img, a)),
    ]
    rows = []
    with FaceAnalyzer(max_faces=1) as analyzer:
        for name in ("obama", "biden", "astronaut"):
            img = load_image(data / f"{name}.jpg")
            a = analyze_hair(img, analyzer.analyze(img)[0])
            x0, y0, x1, y1 = a.box
            side = max(x1 - x0, y1 - y0)
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            cells = []
            for label, fn in edits:
                out = img if fn is None else fn(img, a).image
                pad = np.pad(out, ((side, side), (side, side), (0, 0)), mode="edge")
                crop = pad[
                    cy - side // 2 + side : cy + side // 2 + side,
                    cx - side // 2 + side : cx + side // 2 + side,
                ]
                cells.append(_label(cv2.resize(crop, (200, 200), interpolation=cv2.INTER_AREA), label))
            rows.append(np.concatenate(cells, 1))
        save_image(args.out / "hair-edits.jpg", np.concatenate(rows, 0), quality=88)
        pics = []
        for name in ("obama", "astronaut"):
            img = load_image(data / f"{name}.jpg")
            pics.append(analysis_picture(img, analyze_hair(img, analyzer.analyze(img)[0]), height=260))
        width = max(p.shape[1] for p in pics)
        pics = [np.pad(p, ((0, 4), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in pics]
        save_image(args.out / "hair-analysis.png", np.concatenate(pics, 0))
    print(f"wrote {args.out / 'hair-edits.jpg'} and {args.out / 'hair-analysis.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
