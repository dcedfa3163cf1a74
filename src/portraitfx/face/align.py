"""Canonical aligned face crops and exact paste-back.

A crop is defined by a 2x3 similarity matrix ``M`` mapping full-frame pixel
coordinates to crop coordinates (pixel centres at integers, as OpenCV). The
5 alignment points (eyes, nose tip, mouth corners; image-left first) are fitted
to a template by least squares (Umeyama, no reflection), so any crop size gives
the same framing; :func:`paste_back` warps an edited crop into the frame with the
exact inverse.

Templates (coordinates as fractions of the crop side):
    * ``"ffhq"``: the loose, whole-head framing of FFHQ-style datasets (eyes at
      ~47 % height, inter-ocular distance a quarter of the side);
    * ``"arcface"``: the tight 112 px ArcFace/InsightFace framing used by identity
      and swap models.

Example:
    >>> import numpy as np
    >>> from portraitfx.face.align import alignment_matrix, invert_affine, transform_points
    >>> pts = np.array([[100, 100], [140, 100], [120, 125], [105, 145], [135, 145]], np.float32)
    >>> m = alignment_matrix(pts, size=256)
    >>> back = transform_points(transform_points(pts, m), invert_affine(m))
    >>> bool(np.allclose(back, pts, atol=1e-4))
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from portraitfx._validate import check_choice, check_image
from portraitfx.errors import ConfigError
from portraitfx.face.pose import umeyama
from portraitfx.face.types import Face

__all__ = [
    "TEMPLATES",
    "AlignedFace",
    "TemplateName",
    "align_face",
    "alignment_matrix",
    "invert_affine",
    "paste_back",
    "transform_points",
    "warp_to_frame",
]

TemplateName = Literal["ffhq", "arcface"]

# ArcFace 112x112 five-point template, as fractions of the side.
_ARCFACE = (
    np.array(
        [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
        np.float64,
    )
    / 112.0
)


def _ffhq_from_arcface() -> np.ndarray:
    """Same face proportions, re-framed: eye midpoint at (0.5, 0.4725), eye distance 0.25."""
    eyes_mid = _ARCFACE[:2].mean(0)
    scale = 0.25 / np.linalg.norm(_ARCFACE[1] - _ARCFACE[0])
    return (_ARCFACE - eyes_mid) * scale + np.array([0.5, 0.4725])


TEMPLATES: dict[str, np.ndarray] = {"arcface": _ARCFACE, "ffhq": _ffhq_from_arcface()}


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to ``points (N, 2)``; extra columns (e.g. z) pass through scaled.

    For ``(N, 3)`` points, z is multiplied by the matrix's scale so depth stays in
    the same units as x and y.
    """
    pts = np.asarray(points, np.float64)
    m = np.asarray(matrix, np.float64)
    xy = pts[:, :2] @ m[:, :2].T + m[:, 2]
    if pts.shape[1] == 2:
        return xy.astype(np.float32)
    scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
    return np.concatenate([xy, pts[:, 2:] * scale], axis=1).astype(np.float32)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Exact inverse of a 2x3 affine matrix (float64)."""
    m = np.asarray(matrix, np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([a_inv, -a_inv @ m[:, 2:3]], axis=1)


def alignment_matrix(
    points5: np.ndarray, size: int = 512, template: TemplateName = "ffhq", scale: float = 1.0
) -> np.ndarray:
    """Similarity matrix ``(2, 3)`` float64 taking the frame to a ``size x size`` crop.

    Args:
        points5: ``(5, 2)`` alignment points (see :func:`portraitfx.face.topology.five_points`).
        size: crop side in pixels.
        template: ``"ffhq"`` or ``"arcface"``.
        scale: < 1 zooms out (more context), > 1 zooms in, about the crop centre.
    """
    check_choice(template, tuple(TEMPLATES), "alignment template")
    if size < 8:
        raise ConfigError(f"crop size must be at least 8 pixels, got {size}")
    pts = np.asarray(points5, np.float64)
    if pts.shape != (5, 2):
        raise ConfigError(f"expected (5, 2) alignment points, got {pts.shape}")
    dst = (TEMPLATES[template] - 0.5) * scale + 0.5
    # pixel centres: fraction f of the side maps to f * size - 0.5
    dst = dst * size - 0.5
    s, rot, t = umeyama(pts, dst)
    return np.concatenate([s * rot, t[:, None]], axis=1)


@dataclass
class AlignedFace:
    """An aligned crop and the transform that made it.

    Attributes:
        image: ``(size, size, 3)`` uint8 RGB crop.
        matrix: ``(2, 3)`` float64, frame -> crop.
        inverse: ``(2, 3)`` float64, crop -> frame.
        frame_size: ``(width, height)`` of the source frame.
    """

    image: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    frame_size: tuple[int, int]

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map frame points ``(N, 2|3)`` into crop coordinates."""
        return transform_points(points, self.matrix)

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Map crop points ``(N, 2|3)`` back into frame coordinates."""
        return transform_points(points, self.inverse)


def align_face(
    image: np.ndarray,
    face: Face | np.ndarray,
    size: int = 512,
    template: TemplateName = "ffhq",
    scale: float = 1.0,
    border: Literal["reflect", "constant", "replicate"] = "reflect",
) -> AlignedFace:
    """Cut a canonical, upright ``size x size`` crop of a face.

    Args:
        image: ``H x W x 3`` uint8 RGB frame.
        face: a :class:`Face` or its ``(5, 2)`` alignment points.
        size: crop side in pixels.
        template: framing, see :data:`TEMPLATES`.
        scale: zoom about the crop centre (< 1 shows more context).
        border: how pixels outside the frame are filled.
    """
    image = check_image(image)
    pts = face.five_points if isinstance(face, Face) else np.asarray(face, np.float64)
    m = alignment_matrix(pts, size, template, scale)
    mode = {
        "reflect": cv2.BORDER_REFLECT_101,
        "constant": cv2.BORDER_CONSTANT,
        "replicate": cv2.BORDER_REPLICATE,
    }[check_choice(border, ("reflect", "constant", "replicate"), "border")]
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode)
    return AlignedFace(crop, m, invert_affine(m), (image.shape[1], image.shape[0]))


def _roi(
    inverse: np.ndarray, box: tuple[float, float, float, float], frame_w: int, frame_h: int
) -> tuple[int, int, int, int]:
    """Frame pixels covered by the crop-space box ``(x0, y0, x1, y1)`` (edges, not centres)."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
    pts = transform_points(corners, inverse)
    x0 = int(np.clip(np.floor(pts[:, 0].min()) - 1, 0, frame_w))
    y0 = int(np.clip(np.floor(pts[:, 1].min()) - 1, 0, frame_h))
    x1 = int(np.clip(np.ceil(pts[:, 0].max()) + 2, 0, frame_w))
    y1 = int(np.clip(np.ceil(pts[:, 1].max()) + 2, 0, frame_h))
    return x0, y0, x1, y1


def warp_to_frame(
    crop: np.ndarray, matrix: np.ndarray, frame_size: tuple[int, int], roi: tuple[int, int, int, int]
) -> np.ndarray:
    """Warp a crop (any channels/dtype OpenCV accepts) into the frame region ``roi`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = roi
    shift = np.asarray(matrix, np.float64).copy()
    # crop = M(frame); frame point (x0 + u, y0 + v) -> crop, so fold the ROI offset into M.
    shift[:, 2] += shift[:, :2] @ np.array([x0, y0], np.float64)
    return cv2.warpAffine(
        crop,
        shift,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def paste_back(
    frame: np.ndarray,
    crop: np.ndarray,
    matrix: np.ndarray,
    mask: np.ndarray | None = None,
    feather: float = 0.0,
) -> np.ndarray:
    """Blend an (edited) aligned crop back into a copy of ``frame``.

    Args:
        frame: ``H x W x 3`` uint8 RGB frame the crop came from.
        crop: ``S x S x 3`` uint8 RGB crop.
        matrix: ``(2, 3)`` frame -> crop matrix used to cut the crop.
        mask: optional ``S x S`` float mask in ``[0, 1]`` (crop space); default: the
            whole crop, with its border feathered.
        feather: extra Gaussian feathering of the mask, as a fraction of the crop side.

    Returns:
        A new frame; pixels outside the warped mask are untouched.
    """
    frame = check_image(frame, "frame")
    crop = check_image(crop, "crop")
    size = crop.shape[0]
    if crop.shape[1] != size:
        raise ConfigError(f"crop must be square, got {crop.shape[:2]}")
    if mask is None:
        mask = np.ones((size, size), np.float32)
        edge = max(1, size // 64)
        mask[:edge], mask[-edge:], mask[:, :edge], mask[:, -edge:] = 0, 0, 0, 0
        feather = max(feather, 1.0 / 64)
    mask = np.asarray(mask, np.float32)
    if mask.shape != (size, size):
        raise ConfigError(f"mask must be {size}x{size} like the crop, got {mask.shape}")
    if feather > 0:
        sigma = feather * size
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma)
    h, w = frame.shape[:2]
    out = frame.copy()
    bx, by, bw, bh = cv2.boundingRect((mask > 1e-3).astype(np.uint8))
    if bw == 0 or bh == 0:
        return out
    # only the part of the frame under the mask is touched
    roi = _roi(invert_affine(matrix), (bx - 1.0, by - 1.0, bx + bw, by + bh), w, h)
    x0, y0, x1, y1 = roi
    if x1 <= x0 or y1 <= y0:
        return out
    warped = warp_to_frame(crop, matrix, (w, h), roi)
    alpha = np.clip(warp_to_frame(mask, matrix, (w, h), roi), 0.0, 1.0)
    region = np.ascontiguousarray(out[y0:y1, x0:x1])
    out[y0:y1, x0:x1] = cv2.blendLinear(warped, region, alpha, 1.0 - alpha)
    return out
