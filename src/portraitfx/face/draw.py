"""Annotated overlays of analysed faces: boxes, mesh, irises, ids, pose axes.

Example:
    >>> from portraitfx.face.draw import draw_faces
    >>> annotated = draw_faces(image, faces)             # doctest: +SKIP
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from portraitfx._validate import check_image
from portraitfx.face import topology as T
from portraitfx.face.pose import rotation_matrix
from portraitfx.face.types import Face

__all__ = ["draw_faces"]

_PALETTE = [(255, 196, 0), (0, 200, 255), (255, 80, 160), (120, 255, 80), (200, 120, 255), (255, 120, 60)]


@functools.cache
def _tessellation() -> np.ndarray:
    from portraitfx.face import _mp

    edges = _mp.solutions().face_mesh_connections.FACEMESH_TESSELATION
    return np.array(sorted(edges), np.intp)


def _colour(face: Face, i: int) -> tuple[int, int, int]:
    key = face.track_id if face.track_id is not None else i
    return _PALETTE[key % len(_PALETTE)]


def draw_faces(
    image: np.ndarray,
    faces: list[Face],
    *,
    mesh: bool = True,
    boxes: bool = True,
    labels: bool = True,
    axes: bool = True,
) -> np.ndarray:
    """Return a copy of ``image`` with ``faces`` drawn on it.

    Args:
        image: ``H x W x 3`` uint8 RGB.
        faces: faces in the image's pixel coordinates.
        mesh: draw the mesh tessellation, contours and irises.
        boxes: draw boxes.
        labels: write id, score and pose next to each box.
        axes: draw the head-pose axes from the nose tip (x red, y green, z blue).
    """
    out = check_image(image).copy()
    scale = max(out.shape[:2]) / 720.0
    thick = max(1, int(round(scale * 1.5)))
    shift = 4
    one = 1 << shift
    for i, face in enumerate(faces):
        col = _colour(face, i)
        lm = face.landmarks
        if mesh and len(lm) >= T.N_MESH:
            iod = face.eye_distance
            lines = (lm[_tessellation(), :2] * one).round().astype(np.int32)
            layer = out.copy()
            cv2.polylines(layer, list(lines), False, (230, 230, 230), 1, cv2.LINE_AA, shift)
            cv2.addWeighted(layer, 0.35, out, 0.65, 0, dst=out)
            for loop in (T.FACE_OVAL, T.LEFT_EYE, T.RIGHT_EYE, T.LEFT_EYEBROW, T.RIGHT_EYEBROW,
                         T.LIPS_OUTER, T.LIPS_INNER):  # fmt: skip
                pts = (lm[list(loop), :2] * one).round().astype(np.int32)
                cv2.polylines(out, [pts], True, col, thick, cv2.LINE_AA, shift)
            if len(lm) >= T.N_LANDMARKS:
                for c in (T.LEFT_IRIS_CENTER, T.RIGHT_IRIS_CENTER):
                    centre = (lm[c, :2] * one).round().astype(int)
                    radius = int(round(iod * 0.09 * one))
                    cv2.circle(
                        out, tuple(int(v) for v in centre), radius, (60, 255, 60), thick, cv2.LINE_AA, shift
                    )
        if boxes:
            x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
            cv2.rectangle(out, (x0, y0), (x1, y1), col, thick, cv2.LINE_AA)
        if axes and len(lm) >= T.N_MESH:
            rot = rotation_matrix(*face.pose.as_tuple())
            origin = lm[T.NOSE_TIP, :2]
            length = face.eye_distance * 0.9
            for axis, c in ((0, (255, 60, 60)), (1, (60, 255, 60)), (2, (80, 120, 255))):
                d = rot[:, axis] * length * (-1 if axis == 2 else 1)
                tip = origin + d[:2]
                cv2.arrowedLine(out, tuple(int(v) for v in origin.round()), tuple(int(v) for v in tip.round()),
                                c, thick, cv2.LINE_AA, tipLength=0.2)  # fmt: skip
        if labels:
            p = face.pose
            name = f"#{face.track_id}" if face.track_id is not None else f"face {i}"
            text = f"{name} {face.score:.2f}  yaw {p.yaw:+.0f} pitch {p.pitch:+.0f} roll {p.roll:+.0f}"
            fs = 0.45 * max(scale, 0.6)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
            x0, y0 = int(face.bbox[0]), int(face.bbox[1]) - 4
            y0 = max(y0, th + 4)
            cv2.rectangle(out, (x0, y0 - th - 4), (x0 + tw + 4, y0 + base - 2), col, -1)
            cv2.putText(out, text, (x0 + 2, y0 - 2), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), 1, cv2.LINE_AA)
    return out
