"""Head pose from the face mesh's own 3-D geometry.

The observed mesh ``(x, y, z)`` (pixels, z at MediaPipe's scale) is fitted to a
canonical 3-D face by a least-squares similarity (Umeyama), which is exact under
the weak-perspective model MediaPipe's mesh follows; the rotation is then split
into yaw, pitch and roll (see :class:`portraitfx.face.types.Pose` for signs).
The canonical face is built from real portraits by ``tools/build_canonical_face.py``.

Example:
    >>> import numpy as np
    >>> from portraitfx.face.pose import canonical_face, estimate_pose, rotation_matrix
    >>> pts = canonical_face() @ rotation_matrix(20, -10, 5).T * 60 + 200
    >>> [round(v) for v in estimate_pose(pts).as_tuple()]
    [20, -10, 5]
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from portraitfx.errors import ConfigError
from portraitfx.face.types import Pose

__all__ = ["canonical_face", "estimate_pose", "rotation_matrix", "umeyama"]

# Rigid points that move little with expression (forehead, nose, cheekbones, eye corners).
_RIGID = np.array(
    [10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 33, 133, 263, 362, 234, 454, 93, 323, 127, 356,
     70, 300, 105, 334, 116, 345, 123, 352, 50, 280, 36, 266, 49, 279, 98, 327, 2]
)  # fmt: skip


@functools.cache
def canonical_face() -> np.ndarray:
    """Return the canonical face ``(478, 3)`` float32 (inter-ocular distance 1, centred)."""
    with resources.files("portraitfx.assets").joinpath("canonical_face.npy").open("rb") as fh:
        arr = np.load(fh, allow_pickle=False)
    arr.setflags(write=False)
    return arr


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity from ``src`` to ``dst``.

    Args:
        src: ``(N, D)`` points.
        dst: ``(N, D)`` points.

    Returns:
        ``(scale, R, t)`` with ``R`` ``(D, D)`` a proper rotation, so that
        ``scale * src @ R.T + t`` approximates ``dst``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    if src.shape[1] == 2:
        # in the plane the best rotation has a closed form (no SVD): the angle of
        # sum(a . b) + i sum(a x b), and the scale that sum's length over sum |a|^2
        dot = float(np.vdot(a, b))
        cross = float(np.vdot(a[:, 0], b[:, 1]) - np.vdot(a[:, 1], b[:, 0]))
        norm = float(np.vdot(a, a))
        length = float(np.hypot(dot, cross))
        c, s_ = (dot / length, cross / length) if length > 0 else (1.0, 0.0)
        rot = np.array([[c, -s_], [s_, c]])
        scale = length / norm if norm > 0 else 1.0
        return scale, rot, mu_d - scale * rot @ mu_s
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(src.shape[1])
    d[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag(d) @ vt
    var = a.var(0).sum()
    scale = float((sig * d).sum() / var) if var > 0 else 1.0
    return scale, rot, mu_d - scale * rot @ mu_s


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation ``(3, 3)`` for a pose in degrees (inverse of :func:`estimate_pose`'s split)."""
    t, p, r = np.deg2rad([-yaw, -pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def estimate_pose(landmarks: np.ndarray) -> Pose:
    """Estimate head pose from a mesh.

    Args:
        landmarks: ``(478, 3)`` (or ``(468, 3)``) float mesh in pixels with depth.

    Returns:
        The :class:`Pose` in degrees.
    """
    pts = np.asarray(landmarks, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 468:
        raise ConfigError(f"expected a (478, 3) mesh, got {pts.shape}")
    _, rot, _ = umeyama(canonical_face()[_RIGID].astype(np.float64), pts[_RIGID])
    theta = -np.arcsin(np.clip(rot[2, 0], -1.0, 1.0))
    phi = np.arctan2(rot[2, 1], rot[2, 2])
    psi = np.arctan2(rot[1, 0], rot[0, 0])
    yaw, pitch, roll = np.rad2deg([-theta, -phi, psi])
    return Pose(float(yaw), float(pitch), float(roll))
