"""Pictures of a hair analysis and of before/after sets (for ``hair analyze`` and the docs)."""

from __future__ import annotations

import cv2
import numpy as np

from portraitfx.effects.hair.analysis import HairAnalysis

__all__ = ["analysis_picture"]


def analysis_picture(image: np.ndarray, a: HairAnalysis, height: int = 512) -> np.ndarray:
    """Three panels of the head crop: the photo, the matte in magenta with the hairline
    in green, and the density map (dark where hair is thin, blue outside the hair)."""
    x0, y0, x1, y1 = a.box
    crop = image[y0:y1, x0:x1].astype(np.float32)
    tint = np.array([255.0, 0.0, 200.0], np.float32)
    alpha = a.alpha[..., None] * 0.6
    overlay = crop * (1 - alpha) + tint * alpha
    dens = a.density()
    support = a.full(a.support_work) > 0.5
    dmap = np.where(
        support[..., None], (dens[..., None] * 255.0).repeat(3, -1), np.array([40.0, 60.0, 120.0])
    )
    scale = height / crop.shape[0]
    size = (max(int(round(crop.shape[1] * scale)), 1), height)
    panels = [
        cv2.resize(p.astype(np.uint8), size, interpolation=cv2.INTER_AREA) for p in (crop, overlay, dmap)
    ]
    line = [(p - np.array([x0, y0], np.float32)) * scale for p in a.hairline if np.isfinite(p).all()]
    radius = max(2, height // 160)
    for p in line:
        cv2.circle(panels[1], (int(round(p[0])), int(round(p[1]))), radius, (40, 255, 40), -1, cv2.LINE_AA)
    gap = np.full((height, 6, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], 1)
