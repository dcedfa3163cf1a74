"""Frame-to-frame motion of a face, measured with sparse optical flow.

Landmarks from a per-frame mesh jitter by a pixel or two, and smoothing them lags
behind real motion; effects that draw a texture on the face (stylize, swap) let
the face's measured motion carry their geometry from frame to frame instead, and
pull it gently toward the landmarks so nothing drifts.
"""

from __future__ import annotations

import cv2
import numpy as np

from portraitfx.face.align import invert_affine

__all__ = ["compose_affine", "face_motion", "face_roi", "gray_roi"]


def compose_affine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2x3 affine ``a`` after ``b``."""
    return np.concatenate([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2:3]) + a[:, 2:3]], axis=1)


def face_roi(bbox: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
    """The face box padded by 15 % of its width, inside a ``w x h`` frame."""
    x0, y0, x1, y1 = bbox
    pad = 0.15 * (x1 - x0)
    return int(max(x0 - pad, 0)), int(max(y0 - pad, 0)), int(min(x1 + pad, w)), int(min(y1 + pad, h))


def gray_roi(frame: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """Grayscale ``roi`` of an RGB frame (half size for regions over 256 px wide)."""
    xa, ya, xb, yb = roi
    gray = cv2.cvtColor(np.ascontiguousarray(frame[ya:yb, xa:xb]), cv2.COLOR_RGB2GRAY)
    if xb - xa > 256:  # big faces: half resolution is plenty for the motion, and 4x cheaper
        gray = cv2.resize(gray, ((xb - xa) // 2, (yb - ya) // 2), interpolation=cv2.INTER_AREA)
    return gray


def face_motion(prev: np.ndarray, cur: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray | None:
    """Similarity ``(2, 3)`` (frame pixels) taking the previous frame to this one inside ``roi``.

    ``prev`` and ``cur`` are :func:`gray_roi` of the same region in the two frames.
    Returns None when the motion cannot be measured reliably.
    """
    if prev.shape != cur.shape or min(prev.shape) < 16:
        return None
    pts = cv2.goodFeaturesToTrack(prev, maxCorners=100, qualityLevel=0.01, minDistance=4)
    if pts is None or len(pts) < 12:
        return None
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=(15, 15), maxLevel=2)
    ok = status.ravel() == 1
    if ok.sum() < 12:
        return None
    motion, inliers = cv2.estimateAffinePartial2D(
        pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0
    )
    if motion is None or inliers is None or inliers.sum() < 10:
        return None
    # from region (maybe half-size) pixels to frame pixels: T^-1 . motion . T
    xa, ya, xb, _ = roi
    k = (xb - xa) / prev.shape[1]
    to_roi = np.array([[1 / k, 0, -xa / k], [0, 1 / k, -ya / k]])
    from_roi = invert_affine(to_roi)
    return compose_affine(from_roi, compose_affine(motion.astype(np.float64), to_roi))
