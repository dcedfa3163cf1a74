"""The seed's table for a student run: per ladder stage, clarity, FID and identity, on held-out pairs.

For each stage's model (``stage-*.safetensors`` in ladder order) on the held-out pairs
(the last 10 % by index, as training held them out):

* **PSNR** of the student's outputs against the teacher's (how well it learned);
* **clarity**: the mean sum of Laplacian magnitudes per pixel (seed 000's measure;
  higher is sharper); the teacher's own is the reference row;
* **FID** between the student's outputs and the teacher's, in the project's
  face-identity feature space (dlib descriptors of the aligned faces; the StyleGAN
  toolkit's pluggable FID);
* **identity**: the mean identity similarity (0..1, 0.5 at dlib's same-person
  threshold) of each output to its input photo.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from portraitfx.errors import InputError
from portraitfx.train.student.train import LADDER, load_pairs, load_student, predict

__all__ = ["evaluate_run", "format_table"]


def _ffhq(crops: np.ndarray, crop_scale: float) -> np.ndarray:
    """Student crops (FFHQ framing zoomed out to ``crop_scale``) re-cut at the FFHQ framing itself."""
    size = crops.shape[1]
    side = size * crop_scale
    lo = (size - side) / 2
    m = np.array([[size / side, 0, -lo * size / side], [0, size / side, -lo * size / side]], np.float64)
    return np.stack([cv2.warpAffine(c, m, (size, size), flags=cv2.INTER_AREA) for c in crops])


def evaluate_run(
    run: str | os.PathLike[str],
    pairs: str | os.PathLike[str],
    *,
    limit: int = 64,
    crop_scale: float | None = None,
) -> list[dict[str, Any]]:
    """Rows of the table (the teacher first, then each stage); see the module."""
    from portraitfx.face.identity import identity_similarity
    from portraitfx.metrics import IdentityFeatures, clarity, feature_stats, frechet_distance
    from portraitfx.train.student.teacher import CROP_SCALE

    scale = crop_scale if crop_scale is not None else CROP_SCALE
    root = Path(run)
    if root.is_dir():
        files = [
            root / f"stage-{s}.safetensors" for s in LADDER if (root / f"stage-{s}.safetensors").is_file()
        ]
    else:
        files = [root]
    if not files:
        raise InputError(f"'{run}' holds no student models (stage-*.safetensors)")
    faces, styles = load_pairs(pairs)
    n_val = max(2, int(round(len(faces) * 0.1)))
    faces, styles = faces[-n_val:][-limit:], styles[-n_val:][-limit:]
    features = IdentityFeatures()
    f_in = features(_ffhq(faces, scale))
    f_teacher = features(_ffhq(styles, scale))

    def row(name: str, images: np.ndarray, f: np.ndarray, psnr: float | None) -> dict[str, Any]:
        return {
            "model": name,
            "psnr": psnr,
            "clarity": float(np.mean([clarity(img) for img in images])),
            "fid": fid_value(f),
            "identity": float(np.mean([identity_similarity(a, b) for a, b in zip(f, f_in, strict=True)])),
        }

    teacher_stats = feature_stats(f_teacher)

    def fid_value(f: np.ndarray) -> float:
        return frechet_distance(*feature_stats(f), *teacher_stats)

    rows = [row("teacher", styles, f_teacher, None)]
    for path in files:
        out = predict(load_student(path), faces)
        mse = ((out.astype(np.float64) - styles) ** 2).reshape(len(out), -1).mean(1)
        psnr = float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))
        name = path.stem.replace("stage-", "+") if path.stem.startswith("stage-") else path.stem
        rows.append(row(name, out, features(_ffhq(out, scale)), psnr))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | PSNR vs teacher (dB) | clarity | FID (identity) | identity to input |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        psnr = "-" if r["psnr"] is None else f"{r['psnr']:.2f}"
        lines.append(f"| {r['model']} | {psnr} | {r['clarity']:.2f} | {r['fid']:.4f} | {r['identity']:.3f} |")
    return "\n".join(lines)
