"""Index sets of the 478-point MediaPipe face mesh (468 mesh points + 10 iris points).

Sides are named from the **subject's** point of view, as MediaPipe does: the
subject's right eye appears on the image's left in a non-mirrored photo.
Every loop below is an ordered, closed polygon (first point not repeated), taken
from MediaPipe's published connection sets (see ``tests/face/test_topology.py``
which checks them against ``mediapipe.solutions.face_mesh_connections``).

Example:
    >>> from portraitfx.face import topology
    >>> len(topology.FACE_OVAL), topology.RIGHT_IRIS_CENTER
    (36, 468)
"""

from __future__ import annotations

import numpy as np

N_MESH = 468
N_LANDMARKS = 478

FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
"""Outline of the face, clockwise in the image starting at the top of the forehead (10)."""

RIGHT_EYE: tuple[int, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
"""Subject's right eye lid outline (image left), from the outer corner (33) over the upper lid."""

LEFT_EYE: tuple[int, ...] = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
"""Subject's left eye lid outline (image right), from the outer corner (263) over the upper lid."""

RIGHT_EYEBROW: tuple[int, ...] = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
"""Subject's right brow: upper edge outward-in, then lower edge back out."""

LEFT_EYEBROW: tuple[int, ...] = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
"""Subject's left brow: upper edge outward-in, then lower edge back out."""

LIPS_OUTER: tuple[int, ...] = (
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146,
)  # fmt: skip
"""Outer lip line from the right mouth corner (61) over the upper lip."""

LIPS_INNER: tuple[int, ...] = (
    78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95,
)  # fmt: skip
"""Inner lip line (the mouth opening) from the right inner corner (78)."""

NOSE: tuple[int, ...] = (
    168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 64, 294, 48, 278, 115, 344,
    220, 440, 45, 275, 129, 358, 49, 279, 193, 417,
)  # fmt: skip
"""Points of the nose; the nose region is their convex hull."""

RIGHT_IRIS: tuple[int, ...] = (469, 470, 471, 472)
LEFT_IRIS: tuple[int, ...] = (474, 475, 476, 477)
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473

NOSE_TIP = 1
CHIN = 152
FOREHEAD = 10
MOUTH_RIGHT = 61
MOUTH_LEFT = 291
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362
SUBNASALE = 2

# The iBUG 300-W 68-point layout expressed as mesh vertices. Each iBUG point is the
# mean of one or two mesh vertices, chosen by fitting to dlib's 68-point predictor on
# real portraits and their mirror images (tools/fit_ibug68.py: mean error 4.2 % of the
# inter-ocular distance, 2-3 % inside the face, 7-10 % on the jaw line); order is iBUG's: jaw 0-16 (image left to
# right), brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
IBUG68: tuple[tuple[int, int], ...] = (
    (127, 127), (137, 234), (177, 177), (58, 215), (172, 172), (136, 136),
    (149, 149), (148, 176), (152, 152), (377, 400), (378, 378), (365, 394),
    (397, 397), (288, 435), (376, 401), (352, 454), (356, 356), (46, 156),
    (63, 63), (105, 105), (66, 66), (55, 107), (285, 336), (296, 296),
    (334, 334), (293, 293), (276, 383), (168, 168), (197, 197), (5, 195),
    (45, 275), (60, 98), (97, 97), (94, 164), (326, 326), (305, 327),
    (7, 33), (159, 160), (158, 158), (155, 155), (145, 154), (144, 144),
    (381, 463), (385, 385), (386, 387), (255, 466), (374, 390), (374, 381),
    (61, 61), (39, 40), (37, 37), (0, 11), (267, 302), (269, 304),
    (291, 291), (321, 405), (314, 314), (17, 17), (84, 84), (91, 181),
    (77, 185), (38, 82), (13, 13), (312, 312), (307, 408), (317, 317),
    (14, 14), (87, 178),
)  # fmt: skip


def ibug68(landmarks: np.ndarray) -> np.ndarray:
    """Return the iBUG 68-point view of a mesh.

    Args:
        landmarks: ``(478, 2|3)`` or ``(468, 2|3)`` float mesh in pixels.

    Returns:
        ``(68, 2)`` float32 points in iBUG 300-W order.
    """
    pts = np.asarray(landmarks, dtype=np.float32)[:, :2]
    idx = np.asarray(IBUG68, dtype=np.intp)
    return (pts[idx[:, 0]] + pts[idx[:, 1]]) * 0.5


def eye_centers(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(right_eye, left_eye)`` centres ``(2,)`` float32 (subject's sides).

    Uses the iris centres when the mesh has them (478 points), otherwise the mean
    of the lid outline.
    """
    pts = np.asarray(landmarks, dtype=np.float32)[:, :2]
    if len(pts) >= N_LANDMARKS:
        return pts[RIGHT_IRIS_CENTER].copy(), pts[LEFT_IRIS_CENTER].copy()
    return pts[list(RIGHT_EYE)].mean(0), pts[list(LEFT_EYE)].mean(0)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """Return the classic 5 alignment points ``(5, 2)`` float32 in image-left-first order.

    Order: eye on the image's left (subject's right), eye on the image's right,
    nose tip, mouth corner on the image's left, mouth corner on the image's right —
    the order of the ArcFace/FFHQ templates.
    """
    pts = np.asarray(landmarks, dtype=np.float32)[:, :2]
    r_eye, l_eye = eye_centers(landmarks)
    return np.stack([r_eye, l_eye, pts[NOSE_TIP], pts[MOUTH_RIGHT], pts[MOUTH_LEFT]]).astype(np.float32)
