"""Region masks from the mesh topology.

Regions: ``face`` (inside the face oval), ``face_forehead`` (oval extended up
over the forehead toward the hairline), ``forehead``, ``skin`` (face with
forehead, minus eyes, brows, lips and mouth), ``eyes`` / ``left_eye`` /
``right_eye``, ``brows``, ``lips`` (the red of the lips, mouth opening excluded),
``mouth`` (the mouth opening), ``nose``.

Masks are ``H x W`` float32 in ``[0, 1]``; ``feather`` blurs edges with a
Gaussian whose sigma is that fraction of the inter-ocular distance, so the same
setting looks the same on a thumbnail and on a 4K frame. Work is done only in the
face's bounding box.

Example:
    >>> mask = region_mask(image.shape, face.landmarks, "skin", feather=0.05)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple, get_args

import cv2
import numpy as np

from portraitfx.errors import ConfigError
from portraitfx.face import topology as T

__all__ = [
    "REGIONS",
    "FaceFrame",
    "RegionName",
    "face_frame",
    "forehead_polygon",
    "polygon_mask",
    "region_mask",
    "region_masks",
    "region_polygons",
]

RegionName = Literal[
    "face",
    "face_forehead",
    "forehead",
    "skin",
    "eyes",
    "left_eye",
    "right_eye",
    "brows",
    "lips",
    "mouth",
    "nose",
]
REGIONS: tuple[str, ...] = get_args(RegionName)


def _pts(landmarks: np.ndarray, idx: Iterable[int]) -> np.ndarray:
    return np.asarray(landmarks, np.float32)[list(idx), :2]


def _up_vector(landmarks: np.ndarray) -> np.ndarray:
    """Unit vector from chin toward forehead, orthogonal to the eye line."""
    r, l_ = T.eye_centers(landmarks)
    across = (l_ - r) / max(float(np.linalg.norm(l_ - r)), 1e-6)
    up = np.array([across[1], -across[0]], np.float32)  # eye line rotated 90 deg counter-clockwise
    pts = np.asarray(landmarks, np.float32)
    if np.dot(pts[T.FOREHEAD, :2] - pts[T.CHIN, :2], up) < 0:
        up = -up
    return up


class FaceFrame(NamedTuple):
    """A face's own axes in the image: eye midpoint, eye distance, unit vectors up (chin to
    forehead) and across (along the eye line), and the height from chin to eyes."""

    eye_mid: np.ndarray
    iod: float
    up: np.ndarray
    across: np.ndarray
    face_height: float


def face_frame(landmarks: np.ndarray) -> FaceFrame:
    """The :class:`FaceFrame` of a ``(478, 2|3)`` mesh."""
    lm = np.asarray(landmarks, np.float32)
    r, l_ = T.eye_centers(lm)
    up = _up_vector(lm)
    eye_mid = (r + l_) / 2
    return FaceFrame(
        eye_mid=eye_mid,
        iod=float(np.linalg.norm(l_ - r)),
        up=up,
        across=np.array([-up[1], up[0]], np.float32),
        face_height=float(np.dot(eye_mid - lm[T.CHIN, :2], up)),
    )


def forehead_polygon(landmarks: np.ndarray, extend: float = 0.6) -> np.ndarray:
    """Face oval with its upper part pushed up toward the hairline.

    Each oval point above the eye line moves along the face's up direction by
    ``extend`` times its height above the eye line, so the dome grows smoothly.

    Returns:
        ``(36, 2)`` float32 polygon.
    """
    oval = _pts(landmarks, T.FACE_OVAL)
    up = _up_vector(landmarks)
    r, l_ = T.eye_centers(landmarks)
    eye_mid = (r + l_) / 2
    height = (oval - eye_mid) @ up
    return oval + np.clip(height, 0, None)[:, None] * extend * up[None, :]


def region_polygons(landmarks: np.ndarray, name: RegionName, *, forehead: float = 0.6) -> list[np.ndarray]:
    """Polygons ``[(K, 2) float32, ...]`` whose union (minus holes handled by :func:`region_mask`) is ``name``."""
    lm = landmarks
    if name == "face":
        return [_pts(lm, T.FACE_OVAL)]
    if name in ("face_forehead", "forehead", "skin"):
        return [forehead_polygon(lm, forehead)]
    if name == "eyes":
        return [_pts(lm, T.RIGHT_EYE), _pts(lm, T.LEFT_EYE)]
    if name == "left_eye":
        return [_pts(lm, T.LEFT_EYE)]
    if name == "right_eye":
        return [_pts(lm, T.RIGHT_EYE)]
    if name == "brows":
        return [_pts(lm, T.RIGHT_EYEBROW), _pts(lm, T.LEFT_EYEBROW)]
    if name == "lips":
        return [_pts(lm, T.LIPS_OUTER)]
    if name == "mouth":
        return [_pts(lm, T.LIPS_INNER)]
    if name == "nose":
        return [cv2.convexHull(_pts(lm, T.NOSE)).reshape(-1, 2)]
    raise ConfigError(f"unknown region {name!r}; choose from {', '.join(REGIONS)}")


def _fill(mask: np.ndarray, polys: list[np.ndarray], offset: np.ndarray, value: float) -> None:
    shift = 4  # sub-pixel precision for fillPoly
    pts = [np.round((p - offset) * (1 << shift)).astype(np.int32) for p in polys]
    cv2.fillPoly(mask, pts, value, lineType=cv2.LINE_AA, shift=shift)


def polygon_mask(
    polygons: Iterable[np.ndarray], box: tuple[int, int, int, int], holes: Iterable[np.ndarray] = ()
) -> np.ndarray:
    """Anti-aliased coverage of ``polygons`` (``(K, 2)`` pixel coordinates) inside ``box = (x0, y0, x1, y1)``.

    ``holes`` are cut out afterwards. A cheaper :func:`region_mask` for callers that
    know the polygons and the box they need (see :func:`region_polygons`).

    Returns:
        ``(y1 - y0) x (x1 - x0)`` float32 in ``[0, 1]``; pixel ``(0, 0)`` is the frame's ``(x0, y0)``.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    out = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), np.float32)
    if out.size:
        offset = np.array([x0, y0], np.float32)
        _fill(out, [np.asarray(p, np.float32)[:, :2] for p in polygons], offset, 1.0)
        cut = [np.asarray(p, np.float32)[:, :2] for p in holes]
        if cut:
            _fill(out, cut, offset, 0.0)
    return out


def region_mask(
    shape: tuple[int, ...],
    landmarks: np.ndarray,
    name: RegionName | Iterable[RegionName],
    *,
    feather: float = 0.0,
    forehead: float = 0.6,
) -> np.ndarray:
    """Rasterise a region (or the union of several) of one face.

    Args:
        shape: frame shape ``(H, W[, C])``.
        landmarks: ``(478, 2|3)`` float mesh in pixels.
        name: a region name or several (their union).
        feather: Gaussian edge softness, sigma as a fraction of the inter-ocular distance.
        forehead: how far the forehead extends above the oval (see :func:`forehead_polygon`).

    Returns:
        ``H x W`` float32 mask in ``[0, 1]``.
    """
    h, w = int(shape[0]), int(shape[1])
    names = [name] if isinstance(name, str) else list(name)
    for n in names:
        if n not in REGIONS:
            raise ConfigError(f"unknown region {n!r}; choose from {', '.join(REGIONS)}")
    lm = np.asarray(landmarks, np.float32)
    if lm.ndim != 2 or lm.shape[0] < T.N_MESH:
        raise ConfigError(f"expected a (478, 2|3) mesh, got {lm.shape}")
    iod = float(np.linalg.norm(np.subtract(*T.eye_centers(lm))))
    sigma = feather * iod
    # bounding box of everything we may draw, padded for the blur
    ext = forehead_polygon(lm, forehead)
    allpts = np.concatenate([lm[: T.N_MESH, :2], ext])
    pad = int(np.ceil(3 * sigma)) + 2
    x0 = int(max(np.floor(allpts[:, 0].min()) - pad, 0))
    y0 = int(max(np.floor(allpts[:, 1].min()) - pad, 0))
    x1 = int(min(np.ceil(allpts[:, 0].max()) + pad + 1, w))
    y1 = int(min(np.ceil(allpts[:, 1].max()) + pad + 1, h))
    out = np.zeros((h, w), np.float32)
    if x1 <= x0 or y1 <= y0:
        return out
    roi = np.zeros((y1 - y0, x1 - x0), np.float32)
    offset = np.array([x0, y0], np.float32)
    for n in names:
        part = np.zeros_like(roi)
        _fill(part, region_polygons(lm, n, forehead=forehead), offset, 1.0)
        if n == "lips":
            _fill(part, region_polygons(lm, "mouth"), offset, 0.0)
        elif n == "skin":
            holes = [p for r in ("eyes", "brows", "lips") for p in region_polygons(lm, r)]  # type: ignore[arg-type]
            _fill(part, holes, offset, 0.0)
        elif n == "forehead":
            # keep only what lies above the brows
            up = _up_vector(lm)
            brow_top = float((_pts(lm, T.RIGHT_EYEBROW + T.LEFT_EYEBROW) @ up).max())
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            above = (xx * up[0] + yy * up[1]) >= brow_top
            part *= above
        np.maximum(roi, part, out=roi)
    if sigma > 0:
        roi = cv2.GaussianBlur(roi, (0, 0), sigmaX=sigma, sigmaY=sigma)
    out[y0:y1, x0:x1] = roi
    return out


def region_masks(
    shape: tuple[int, ...], landmarks: np.ndarray, names: Iterable[RegionName] = REGIONS, **kw: float
) -> dict[str, np.ndarray]:
    """Return ``{name: mask}`` for several regions (see :func:`region_mask`)."""
    return {n: region_mask(shape, landmarks, n, **kw) for n in names}
