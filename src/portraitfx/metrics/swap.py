"""Face-swap quality, one table for the model-free swap and any learned swapper (seed 004).

For every ordered pair of people in a folder of photos (one or more per person, the
identity from the sub-folder or the file name before ``_``), the first photo of the
target person gets the source person's face (the source's other photos are not used):

* **identity retrieval**: the output's dlib descriptor is compared with every person's
  mean descriptor; top-1 is right when the nearest is the source (chance: 1 / N);
  also the mean identity similarity to the source and to the target (0..1, 0.5 at
  dlib's same-person threshold);
* **pose error**: the head pose (yaw, pitch, roll from the mesh) of the output
  against the target's, mean absolute degrees;
* **expression error**: how open the eyes and mouth are (gap over width), output
  against target, mean absolute difference;
* **flicker** (with ``clip``): the swap of a short clip of a target photo moved by
  small shifts, measured as the mean change between consecutive frames inside the
  face, over the same measure of the input clip (1.0: no flicker added).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portraitfx.errors import InputError

__all__ = ["SwapScores", "evaluate_swap", "format_swap_table"]


@dataclass
class SwapScores:
    name: str
    pairs: int
    retrieval: float
    to_source: float
    to_target: float
    pose_error: float
    expression_error: float
    flicker: float | None


def _people(folder: Path) -> dict[str, list[Path]]:
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    )
    out: dict[str, list[Path]] = {}
    for p in files:
        rel = p.relative_to(folder)
        who = rel.parts[0] if len(rel.parts) > 1 else (p.stem.rsplit("_", 1)[0] if "_" in p.stem else p.stem)
        out.setdefault(who, []).append(p)
    return out


def _largest(faces: list[Any]) -> Any:
    return max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))


def evaluate_swap(
    folder: str | os.PathLike[str], *, model: str | os.PathLike[str] | None = None, clip_frames: int = 0
) -> SwapScores:
    """Scores of the model-free swap (``model=None``) or of a learned swapper (an ONNX file)."""
    import portraitfx as pfx
    from portraitfx.effects import create_effect
    from portraitfx.effects.swap.effect import openings
    from portraitfx.face.identity import FaceEmbedder, identity_similarity
    from portraitfx.io.images import load_image

    people = _people(Path(folder))
    if len(people) < 2:
        raise InputError(f"'{folder}' has photos of {len(people)} people; the evaluation needs at least 2")
    embed = FaceEmbedder()
    photos, faces, means = {}, {}, {}
    for who, paths in people.items():
        descs = []
        for i, p in enumerate(paths):
            img = load_image(p)
            found = pfx.analyze(img)
            if not found:
                continue
            face = _largest(found)
            descs.append(embed(img, face))
            if i == 0 or who not in photos:
                photos[who], faces[who] = img, face
        if descs:
            means[who] = np.mean(descs, axis=0)
    names = sorted(means)
    hits, to_src, to_tgt, pose_err, expr_err = [], [], [], [], []
    flicker = None
    for src in names:
        effect = create_effect("swap", source=[str(p) for p in people[src]], model=model, provenance=False)
        try:
            for tgt in names:
                if tgt == src:
                    continue
                out = effect.apply(photos[tgt], [faces[tgt]])
                found = pfx.analyze(out)
                if not found:
                    hits.append(0.0)
                    continue
                face = _largest(found)
                d = embed(out, face)
                nearest = min(names, key=lambda n: float(np.linalg.norm(d - means[n])))
                hits.append(float(nearest == src))
                to_src.append(identity_similarity(d, means[src]))
                to_tgt.append(identity_similarity(d, means[tgt]))
                a, b = face.pose, faces[tgt].pose
                pose_err.append(np.mean([abs(a.yaw - b.yaw), abs(a.pitch - b.pitch), abs(a.roll - b.roll)]))
                expr_err.append(
                    float(
                        np.mean(np.abs(np.subtract(openings(face.landmarks), openings(faces[tgt].landmarks))))
                    )
                )
            if clip_frames and src == names[-1]:  # one clip: the last source on the first other person
                flicker = _flicker(effect, photos[names[0]], clip_frames)
        finally:
            effect.close()
    return SwapScores(
        name="model-free" if model is None else Path(model).name,
        pairs=len(hits),
        retrieval=float(np.mean(hits)),
        to_source=float(np.mean(to_src)) if to_src else 0.0,
        to_target=float(np.mean(to_tgt)) if to_tgt else 0.0,
        pose_error=float(np.mean(pose_err)) if pose_err else float("nan"),
        expression_error=float(np.mean(expr_err)) if expr_err else float("nan"),
        flicker=flicker,
    )


def _flicker(effect: Any, photo: np.ndarray, frames: int) -> float:
    """Swap a clip of ``photo`` shifted by up to 2 px; consecutive-frame change in the face, output over input."""
    import portraitfx as pfx
    from portraitfx.effects.base import EffectState

    rng = np.random.default_rng(0)
    state = EffectState()
    ins, outs, box = [], [], None
    for i in range(frames):
        dx, dy = rng.integers(-2, 3, 2)
        frame = np.roll(photo, (int(dy), int(dx)), axis=(0, 1))
        found = pfx.analyze(frame)
        if not found:
            continue
        face = _largest(found)
        if box is None:
            box = face.bbox.astype(int)
        state.frame_index = i
        ins.append(frame.astype(np.float32))
        outs.append(effect.apply(frame, [face], state).astype(np.float32))
    if len(outs) < 3 or box is None:
        return float("nan")
    x0, y0, x1, y1 = box

    def change(seq: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(a - b)[y0:y1, x0:x1].mean() for a, b in itertools.pairwise(seq)]))

    return change(outs) / max(change(ins), 1e-6)


def format_swap_table(rows: list[SwapScores]) -> str:
    lines = [
        "| swap | pairs | identity top-1 | similarity to source | to target | pose error (deg) | expression error | flicker |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        flicker = "-" if r.flicker is None else f"{r.flicker:.2f}x"
        lines.append(
            f"| {r.name} | {r.pairs} | {r.retrieval:.2f} | {r.to_source:.3f} | {r.to_target:.3f} | "
            f"{r.pose_error:.2f} | {r.expression_error:.3f} | {flicker} |"
        )
    return "\n".join(lines)
