"""Quality metrics shared by the effect tests."""

from __future__ import annotations

import cv2
import numpy as np


def flow_compensated_diff(frames: list[np.ndarray], mask: np.ndarray, flows: list[np.ndarray]) -> float:
    """Flicker: mean absolute change inside ``mask`` between each frame and the previous one
    moved by ``flows[i - 1]`` (backward flow, frame i -> i-1, measured on the input clip)."""
    diffs = []
    h, w = frames[0].shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float32)
    for i in range(1, len(frames)):
        m = grid + flows[i - 1]
        warped = cv2.remap(
            frames[i - 1], m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        d = np.abs(frames[i].astype(np.float32) - warped.astype(np.float32)).mean(2)
        diffs.append(d[mask].mean())
    return float(np.mean(diffs))
