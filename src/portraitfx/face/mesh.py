"""The 478-point face mesh (MediaPipe face mesh with attention: refined lips, eyes, irises).

For still images each detected face is cut out upright (rotated by its eye line)
at a fixed resolution and meshed on its own, so small faces in large photos and
tilted heads get the same accuracy as a selfie; landmarks are mapped back to
full-frame pixels with the exact inverse transform. Video uses
:class:`portraitfx.face.track.FaceTracker`, which runs MediaPipe's own tracking.

Example:
    >>> from portraitfx.face.mesh import FaceMesher
    >>> with FaceMesher() as mesher:                  # doctest: +SKIP
    ...     landmarks = mesher(image, detection)      # (478, 3) float32 or None
"""

from __future__ import annotations

import cv2
import numpy as np

from portraitfx._validate import check_image
from portraitfx.face import _mp
from portraitfx.face.align import invert_affine, transform_points
from portraitfx.face.types import Detection

__all__ = ["FaceMesher", "landmarks_from_result", "mesh_bbox"]


def landmarks_from_result(face_landmarks: object, width: int, height: int) -> np.ndarray:
    """Convert one MediaPipe ``NormalizedLandmarkList`` into ``(478, 3)`` float32 pixels.

    MediaPipe's x, y are fractions of the image with 0 at the left/top edge; we use
    pixel centres, hence the -0.5. z shares x's scale.
    """
    lm = face_landmarks.landmark  # type: ignore[attr-defined]
    arr = np.fromiter((v for p in lm for v in (p.x, p.y, p.z)), np.float32, count=3 * len(lm)).reshape(-1, 3)
    arr[:, 0] = arr[:, 0] * width - 0.5
    arr[:, 1] = arr[:, 1] * height - 0.5
    arr[:, 2] *= width
    return arr


def mesh_bbox(landmarks: np.ndarray) -> np.ndarray:
    """``(4,)`` float32 extent ``x0, y0, x1, y1`` of the 468 mesh points."""
    pts = landmarks[:468, :2]
    return np.concatenate([pts.min(0), pts.max(0)]).astype(np.float32)


class FaceMesher:
    """Mesh one detected face at a time (still-image mode).

    Args:
        crop_size: side of the upright crop the mesh runs on, in pixels.
        context: crop side as a multiple of the detection box size.
    """

    def __init__(self, crop_size: int = 256, context: float = 2.0) -> None:
        self.crop_size = int(crop_size)
        self.context = float(context)
        self._graph: _mp.Graph | None = None

    def crop_matrix(self, detection: Detection, context: float | None = None) -> np.ndarray:
        """``(2, 3)`` frame -> crop matrix: upright by the eye line, face centred.

        Args:
            detection: the face box and keypoints (the first two are the eyes).
            context: crop side as a multiple of the box size (default: the mesher's).
        """
        x0, y0, x1, y1 = detection.bbox.astype(np.float64)
        kp = detection.keypoints.astype(np.float64)
        dx, dy = kp[1] - kp[0]
        angle = np.degrees(np.arctan2(dy, dx)) if (dx or dy) else 0.0
        center = ((x0 + x1) / 2, (y0 + y1) / 2)
        side = max(x1 - x0, y1 - y0) * (self.context if context is None else context)
        m = cv2.getRotationMatrix2D(center, angle, self.crop_size / max(side, 1.0))
        m[:, 2] += np.array([self.crop_size / 2 - 0.5, self.crop_size / 2 - 0.5]) - np.array(center)
        return m

    def __call__(self, image: np.ndarray, detection: Detection) -> np.ndarray | None:
        """Return the ``(478, 3)`` float32 mesh of ``detection`` in ``image``, or None if not found."""
        image = check_image(image)
        m = self.crop_matrix(detection)
        crop = cv2.warpAffine(
            image,
            m,
            (self.crop_size, self.crop_size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if self._graph is None:
            self._graph = _mp.face_mesh(static=True, max_faces=2, min_score=0.3)
        result = self._graph.process(crop)
        if not result.multi_face_landmarks:
            return None
        meshes = [
            landmarks_from_result(f, self.crop_size, self.crop_size) for f in result.multi_face_landmarks
        ]
        centre = np.array([self.crop_size / 2 - 0.5] * 2)
        best = min(meshes, key=lambda lm: float(np.linalg.norm(lm[:468, :2].mean(0) - centre)))
        return transform_points(best, invert_affine(m))

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self) -> FaceMesher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
