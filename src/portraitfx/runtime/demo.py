"""The demo job: every capability so far, run on the built-in sample portrait.

Writes to the output folder:
    * ``analyze.png`` / ``analyze.json``: faces, mesh, pose of the sample;
    * ``regions.png``: a contact sheet of region masks, person and hair masks and
      aligned crops;
    * ``sample_clip.mp4``: a synthetic hand-held clip made from the sample, with an
      audio tone; ``tracking.mp4`` / ``tracking.json``: that clip analysed with
      tracking (the audio is carried over);
    * ``stylize.png``: the sample stylized with each built-in style (head zoom);
      ``stylize_styles.png``: each style's exemplar next to its result, both in the
      style's aligned face frame; ``stylize.mp4``: the synthetic clip in ``pencil``
      (audio kept);
    * ``toon.png``: the sample through the shipped real-time student (the photo, the
      FaceBlit pencil teacher, the student) and ``toon.mp4``: the clip through it;
    * ``hair.png``: the model-free hair edits on the sample (recolour, hairline, fill,
      bangs) and ``hair_analysis.png``: the hair matte, hairline and density map.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from portraitfx.assets import sample_path

__all__ = ["contact_sheet", "run_demo"]


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(tile, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet(tiles: list[tuple[str, np.ndarray]], size: int = 256, columns: int = 4) -> np.ndarray:
    """Lay out labelled RGB tiles (each resized to ``size`` square) in a grid."""
    cells = [_label(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), name) for name, img in tiles]
    while len(cells) % columns:
        cells.append(np.full((size, size, 3), 32, np.uint8))
    rows = [np.concatenate(cells[i : i + columns], 1) for i in range(0, len(cells), columns)]
    return np.concatenate(rows, 0)


def _tint(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    a = np.clip(mask, 0, 1)[..., None] * 0.6
    return (image * (1 - a) + np.array(colour, np.float32) * a).astype(np.uint8)


def run_demo(
    out_dir: str | os.PathLike[str], log: Callable[[str], None] = print, *, progress: bool = True
) -> dict[str, Path]:
    """Run the demo into ``out_dir`` and return ``{name: path}`` of what it wrote."""
    from portraitfx.face.align import align_face
    from portraitfx.face.analyze import AnalyzeOptions, FaceAnalyzer, require_face
    from portraitfx.face.regions import region_mask
    from portraitfx.face.segment import PersonSegmenter, hair_mask
    from portraitfx.io.images import read_image, save_image
    from portraitfx.runtime.analyze import analyze_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = sample_path()
    written: dict[str, Path] = {}

    log(f"analysing the sample portrait {sample.name} ...")
    analyze_file(sample, json_path=out / "analyze.json", overlay_path=out / "analyze.png",
                 options=AnalyzeOptions(embed=True))  # fmt: skip
    written["analyze"] = out / "analyze.png"
    written["analyze json"] = out / "analyze.json"

    log("drawing region masks, segmentation and aligned crops ...")
    image = read_image(sample).rgb
    with FaceAnalyzer() as analyzer:
        face = require_face(analyzer.run(image), sample.name)[0]
    lm = face.landmarks
    tiles: list[tuple[str, np.ndarray]] = [("input", image)]
    colours = {"skin": (255, 170, 120), "forehead": (255, 230, 80), "eyes": (80, 200, 255), "brows": (160, 90, 40),
               "lips": (230, 40, 90), "mouth": (120, 0, 40), "nose": (120, 255, 120)}  # fmt: skip
    regions = image.copy()
    for name, col in colours.items():
        regions = _tint(regions, region_mask(image.shape, lm, name), col)  # type: ignore[arg-type]
    x0, y0, x1, y1 = face.bbox
    pad = 0.6 * (x1 - x0)
    crop = (slice(max(int(y0 - pad), 0), int(y1 + pad * 0.5)), slice(max(int(x0 - pad), 0), int(x1 + pad)))
    tiles.append(("regions (zoom)", regions[crop]))
    tiles.append(
        (
            "skin, feathered",
            _tint(image, region_mask(image.shape, lm, "skin", feather=0.08), (255, 0, 255))[crop],
        )
    )
    with PersonSegmenter() as seg:
        person = seg(image)
    tiles.append(("person", _tint(image, person, (0, 160, 255))))
    tiles.append(("hair (coarse)", _tint(image, hair_mask(person, lm), (255, 60, 0))[crop]))
    tiles.append(("aligned ffhq 512", align_face(image, face, 512, "ffhq").image))
    tiles.append(("aligned arcface 112", align_face(image, face, 112, "arcface").image))
    tiles.append(
        ("forehead ext.", _tint(image, region_mask(image.shape, lm, "face_forehead"), (255, 255, 0))[crop])
    )
    save_image(out / "regions.png", contact_sheet(tiles))
    written["regions"] = out / "regions.png"

    log("tracking faces in a synthetic clip made from the sample ...")
    from portraitfx.testing import clips

    clip = out / "sample_clip.mp4"
    h, w = image.shape[:2]
    centre = (float(face.center[0]) / w, float(face.center[1] + 0.15 * face.size) / h)
    frames = clips.iter_moving_crop_frames(
        image, 90, size=(640, 360), center=centre, crop=1.0, pan=0.08, roll_deg=8
    )
    clips.make_clip(clip, frames, fps=30, crf=20)
    report = analyze_file(
        clip, json_path=out / "tracking.json", overlay_path=out / "tracking.mp4", progress=progress
    )
    log(f"  {report.frames} frames, {report.faces} track(s), {report.seconds:.1f} s")
    written["clip"] = clip
    written["tracking"] = out / "tracking.mp4"
    written["tracking json"] = out / "tracking.json"

    log("stylizing the sample and the clip with the built-in styles ...")
    from portraitfx.effects import create_effect
    from portraitfx.effects.stylize.builtin import BUILTIN_STYLES
    from portraitfx.runtime.apply import apply_to_file

    results: list[tuple[str, np.ndarray]] = [("input (zoom)", image[crop])]
    pairs: list[tuple[str, np.ndarray]] = []
    for name in BUILTIN_STYLES:
        effect = create_effect("stylize", style=name)
        try:
            styled = effect.apply(image, [face])
            exemplar = effect.style.exemplar  # type: ignore[attr-defined]
        finally:
            effect.close()
        results.append((name, styled[crop]))
        framed = align_face(styled, face, exemplar.shape[0], "ffhq").image
        pairs += [(f"{name}: style", exemplar), (f"{name}: result", framed)]
    save_image(out / "stylize.png", contact_sheet(results, size=320, columns=len(results)))
    save_image(out / "stylize_styles.png", contact_sheet(pairs, columns=4))
    written["stylize"] = out / "stylize.png"
    written["styles"] = out / "stylize_styles.png"
    effect = create_effect("stylize", style="pencil")
    try:
        styled_clip = apply_to_file(effect, clip, out / "stylize.mp4", progress=progress)
    finally:
        effect.close()
    rate = styled_clip.seconds / max(styled_clip.media_seconds, 1e-9)
    log(
        f"  pencil clip: {styled_clip.frames} frames, {styled_clip.seconds:.1f} s ({rate:.2f} s per second of video)"
    )
    written["stylize clip"] = out / "stylize.mp4"

    log("the real-time student (toon) on the sample and the clip ...")
    teacher = create_effect("stylize", style="pencil", region="head")
    toon = create_effect("toon")
    try:
        tiles = [("input (zoom)", image[crop]), ("teacher: FaceBlit pencil", teacher.apply(image, [face])[crop]),
                 ("student: toon (ONNX)", toon.apply(image, [face])[crop])]  # fmt: skip
        save_image(out / "toon.png", contact_sheet(tiles, size=320, columns=3))
        toon_clip = apply_to_file(toon, clip, out / "toon.mp4", progress=progress)
    finally:
        teacher.close()
        toon.close()
    rate = toon_clip.seconds / max(toon_clip.media_seconds, 1e-9)
    log(
        f"  toon clip: {toon_clip.frames} frames, {toon_clip.seconds:.1f} s ({rate:.2f} s per second of video)"
    )
    written["toon"] = out / "toon.png"
    written["toon clip"] = out / "toon.mp4"

    log("hair edits on the sample ...")
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

    hair = analyze_hair(image, face)
    tiles = [
        ("input (zoom)", image[crop]),
        ("recolor auburn", recolor(image, hair, rgb_to_lab(parse_colour("auburn"))).image[crop]),
        ("recolor #c02060", recolor(image, hair, rgb_to_lab(parse_colour("#c02060"))).image[crop]),
        ("hairline -0.25", adjust_hairline(image, hair, -0.25).image[crop]),
        ("fill", fill_sparse(image, hair).image[crop]),
        ("bangs", add_bangs(image, hair, amount=1.0).image[crop]),
    ]
    save_image(out / "hair.png", contact_sheet(tiles, size=256, columns=3))
    save_image(out / "hair_analysis.png", analysis_picture(image, hair, height=320))
    written["hair"] = out / "hair.png"
    written["hair analysis"] = out / "hair_analysis.png"
    return written
