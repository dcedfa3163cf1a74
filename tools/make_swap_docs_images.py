"""Contact sheets of the swap on the test photos, for developers to look at: a local review tool.

The pictures are NOT for publishing: the test photos show real people who have not
agreed to have their faces swapped, and ``tests/data/README.md`` and
``docs/responsible-use.md`` keep them to testing. The sheets go to
``out/swap-review/`` (not tracked); to show the engine in public, use photos of
people who agreed (change ``PEOPLE`` and ``DATA``).

* ``swap-pairs.png``: one row per target photo (obama, biden, astronaut): the
  original, then the swap with each other person as the source;
* ``swap-options.png``: biden on obama with the default options, ``shape=0``,
  ``skin=0``, and a coloured patch over the target's face with ``occlusion`` on
  (the patch should stay in front) and off.

Provenance stays on (the default): every swapped picture carries the invisible
watermark, and each sheet is saved with :func:`portraitfx.provenance.save_marked_image`
(watermark + metadata of its own).

    .venv/bin/python tools/make_swap_docs_images.py

``--docs`` writes the one sheet that is published, ``docs/images/swap-same-person.jpg``:
every swap on it puts a person's face from one photo onto *another photo of the same
person* (the three obama photos), so no picture shows anyone as someone else, and
it still shows what the engine does and keeps (pose, expression, eyes, mouth, skin
tone, background, seams, occluders, a video). Each result has a difference map
beside it (|after - before| x 4): only the face changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
DOCS = ROOT / "out" / "swap-review"
MAX_BYTES = 600_000
CELL = 220  # side of a face crop on the sheets (pixels)
BAR = 22  # height of a caption bar

# person -> photos of them (the first is the target photo; all are source photos)
PEOPLE = {
    "obama": ["obama.jpg", "obama2.jpg"],
    "biden": ["biden.jpg"],
    "astronaut": ["astronaut.jpg"],
}


def _caption(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` with a black caption bar on top."""
    bar = np.zeros((BAR, tile.shape[1], 3), np.uint8)
    cv2.putText(bar, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, tile], 0)


def _blank(lines: tuple[str, ...] = ()) -> np.ndarray:
    """An empty cell, with ``lines`` of small text (a legend) if given."""
    cell = np.full((CELL, CELL, 3), 32, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(
            cell, line, (8, 22 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (220, 220, 220), 1, cv2.LINE_AA
        )
    return _caption(cell, "")


def _face_box(image: np.ndarray, face) -> tuple[int, int, int]:
    """A square around the face (1.4 x its box): ``(x0, y0, side)`` in image pixels."""
    x0, y0, x1, y1 = (float(v) for v in face.bbox)
    side = int(round(1.4 * max(x1 - x0, y1 - y0)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.05 * side  # a little above centre: hair, not neck
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def _crop(image: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """The square ``box`` of ``image`` (padded with gray where it leaves the picture), at CELL px."""
    x0, y0, side = box
    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(48, 48, 48))
    square = padded[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    return cv2.resize(square, (CELL, CELL), interpolation=cv2.INTER_AREA)


def _grid(rows: list[list[np.ndarray]], legend: tuple[str, ...] = ()) -> np.ndarray:
    columns = max(len(r) for r in rows)
    lines = [np.concatenate(r + [_blank(legend)] * (columns - len(r)), 1) for r in rows]
    sheet = np.concatenate(lines, 0)
    # thin separators between cells
    sheet[:, ::CELL][:, 1:] = 0
    sheet[:: CELL + BAR][1:] = 0
    return sheet


def _save(name: str, sheet: np.ndarray) -> None:
    """Save a sheet with provenance (watermark + metadata), shrinking it until it is under MAX_BYTES."""
    from portraitfx.io.images import encode_image
    from portraitfx.provenance import detect_watermark, read_provenance, save_marked_image

    DOCS.mkdir(parents=True, exist_ok=True)
    path = DOCS / name
    while True:
        if len(encode_image(sheet, path.suffix[1:])) <= MAX_BYTES or sheet.shape[1] < 400:
            save_marked_image(path, sheet, "swap")  # on by default: watermark and metadata
            if path.stat().st_size <= MAX_BYTES or sheet.shape[1] < 400:
                break
        sheet = cv2.resize(
            sheet, (sheet.shape[1] * 9 // 10, sheet.shape[0] * 9 // 10), interpolation=cv2.INTER_AREA
        )
    from portraitfx.io.images import load_image

    found = detect_watermark(load_image(path))
    record = read_provenance(path)
    print(
        f"wrote {path}: {sheet.shape[1]}x{sheet.shape[0]}, {path.stat().st_size // 1000} kB; "
        f"watermark {'found' if found.found else 'NOT found'} (score {found.score:.1f}), "
        f"metadata: {record.get('statement', 'NONE')!r}"
    )
    if not found.found or not record:
        sys.exit(f"{path} lacks its provenance marks")


def _check_marked(image: np.ndarray, what: str) -> None:
    from portraitfx.provenance import detect_watermark

    if not detect_watermark(image).found:
        sys.exit(f"{what}: the swapped picture carries no watermark")


def pairs_sheet(effects: dict, targets: dict) -> np.ndarray:
    """Rows: target photos; columns: the original, then each other person as the source."""
    rows = []
    for target, (image, face) in targets.items():
        box = _face_box(image, face)
        row = [_caption(_crop(image, box), f"{target} (original)")]
        for source, effect in effects.items():
            if source == target:
                continue
            out = effect.apply(image, [face])
            _check_marked(out, f"{source} -> {target}")
            row.append(_caption(_crop(out, box), f"{source} -> {target}"))
        rows.append(row)
    return _grid(rows)


def options_sheet(targets: dict) -> np.ndarray:
    """Biden on obama: default options, shape=0, skin=0; a patch over the face with occlusion on/off."""
    import portraitfx as pfx

    image, face = targets["obama"]
    box = _face_box(image, face)
    source = [DATA / name for name in PEOPLE["biden"]]
    default = pfx.create_effect("swap", source=source)
    variants = [
        ("default (shape .8, skin .85)", default),
        ("shape=0.0", pfx.create_effect("swap", source=source, shape=0.0)),
        ("skin=0.0", pfx.create_effect("swap", source=source, skin=0.0)),
    ]
    top = [_caption(_crop(image, box), "obama (original)")]
    for label, effect in variants:
        out = effect.apply(image, [face])
        _check_marked(out, label)
        top.append(_caption(_crop(out, box), label))
    # a blue patch over the mouth and a cheek (as tests/effects/test_swap.py does)
    covered = image.copy()
    x0, y0, x1, y1 = face.bbox.astype(int)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    w = (x1 - x0) // 3
    covered[cy : cy + w, cx - w // 2 : cx + w // 2] = (40, 120, 200)
    covered_face = pfx.analyze(covered)[0]
    bottom = [_caption(_crop(covered, box), "obama + patch (original)")]
    for label, effect in (
        ("occlusion on (default)", default),
        ("occlusion=False", pfx.create_effect("swap", source=source, occlusion=False)),
    ):
        out = effect.apply(covered, [covered_face])
        _check_marked(out, label)
        bottom.append(_caption(_crop(out, box), label))
    legend = (
        "source: biden.jpg",
        "target: obama.jpg",
        "",
        "patch: a flat blue square",
        "over mouth and cheek,",
        "standing in for a hand",
        "",
        "every swapped picture",
        "carries the watermark;",
        "this sheet: watermark",
        "+ provenance metadata",
    )
    return _grid([top, bottom], legend)


def main() -> None:
    import portraitfx as pfx
    from portraitfx.io.images import load_image

    targets = {}
    for person, names in PEOPLE.items():
        image = load_image(DATA / names[0])
        faces = pfx.analyze(image)
        if not faces:
            sys.exit(f"no face found in tests/data/{names[0]}")
        targets[person] = (image, faces[0])
    effects = {
        person: pfx.create_effect("swap", source=[DATA / n for n in names])
        for person, names in PEOPLE.items()
    }
    _save("swap-pairs.png", pairs_sheet(effects, targets))
    _save("swap-options.png", options_sheet(targets))


def same_person_sheet() -> np.ndarray:
    """The published sheet: swaps between photos of the same person, a video, an occluder."""
    import portraitfx as pfx
    from portraitfx.effects import EffectState
    from portraitfx.io.images import load_image
    from portraitfx.testing import clips

    def diff(after: np.ndarray, before: np.ndarray) -> np.ndarray:
        return np.clip(np.abs(after.astype(np.int16) - before) * 4, 0, 255).astype(np.uint8)

    rows = []
    # (obama3.jpg is washed out: as a source it gives a pale face, a known limit that
    # docs/swap.md states; here it is a target only)
    pairs = [("obama.jpg", "obama2.jpg"), ("obama2.jpg", "obama.jpg"), ("obama3.jpg", "obama.jpg")]
    for target_name, source_name in pairs:
        target, source = load_image(DATA / target_name), load_image(DATA / source_name)
        face = pfx.analyze(target)[0]
        out = pfx.create_effect("swap", source=source).apply(target, [face])
        _check_marked(out, f"{source_name} -> {target_name}")
        box = _face_box(target, face)
        rows.append([
            _caption(_crop(source, _face_box(source, pfx.analyze(source)[0])), f"source: {source_name}"),
            _caption(_crop(target, box), f"before: {target_name}"),
            _caption(_crop(out, box), "after"),
            _caption(_crop(diff(out, target), box), "|after - before| x 4"),
        ])  # fmt: skip
    # an occluder: a flat blue patch over mouth and cheek stands in for a hand
    target, source = load_image(DATA / "obama.jpg"), load_image(DATA / "obama2.jpg")
    face = pfx.analyze(target)[0]
    x0, y0, x1, y1 = face.bbox.astype(int)
    cx, cy, w = (x0 + x1) // 2, (y0 + y1) // 2, (x1 - x0) // 3
    covered = target.copy()
    covered[cy : cy + w, cx - w // 2 : cx + w // 2] = (40, 120, 200)
    covered_face = pfx.analyze(covered)[0]
    box = _face_box(target, face)
    on = pfx.create_effect("swap", source=source).apply(covered, [covered_face])
    off = pfx.create_effect("swap", source=source, occlusion=False).apply(covered, [covered_face])
    rows.append([
        _caption(_crop(covered, box), "before: + a patch"),
        _caption(_crop(on, box), "after (occlusion on)"),
        _caption(_crop(off, box), "occlusion=False"),
        _caption(_crop(diff(on, covered), box), "|after - before| x 4"),
    ])  # fmt: skip
    # a video: obama.jpg's head panned, zoomed and rolled (the test clips' motion), obama2 as source
    x0, y0, side = _face_box(target, face)
    head = np.ascontiguousarray(
        target[max(y0 - side // 4, 0) : y0 + side + side // 4, max(x0 - side // 4, 0) : x0 + side + side // 4]
    )
    frames = list(clips.iter_moving_crop_frames(head, 24, size=(360, 360), pan=0.08, zoom=0.08, roll_deg=6))
    effect = pfx.create_effect("swap", source=source)
    state = EffectState()
    from portraitfx.face.track import FaceTracker

    before, after = [], []
    with FaceTracker(4, smooth=effect.smooth_landmarks) as tracker:
        for i, frame in enumerate(frames):
            faces = tracker.update(frame, i / 30)
            out = effect.apply(frame, faces, state)
            if i in (0, 8, 16, 23):
                before.append(frame)
                after.append(out)
    side = lambda im: cv2.resize(im, (CELL, CELL), interpolation=cv2.INTER_AREA)  # noqa: E731
    rows.append(
        [_caption(side(f), f"video frame {k}: before") for f, k in zip(before, (0, 8, 16, 23), strict=True)]
    )
    rows.append(
        [_caption(side(f), f"video frame {k}: after") for f, k in zip(after, (0, 8, 16, 23), strict=True)]
    )
    return _grid(rows)


if __name__ == "__main__":
    if "--docs" in sys.argv[1:]:
        DOCS = ROOT / "docs" / "images"
        _save("swap-same-person.jpg", same_person_sheet())
    else:
        main()
