"""Plain data types of face analysis.

Conventions (used everywhere in portraitfx):
    * pixel coordinates in the full frame, origin at the centre of the top-left
      pixel, x to the right, y down;
    * the mesh is ``(478, 3)`` float32: 468 MediaPipe mesh points then 10 iris
      points; z is depth in pixels at MediaPipe's scale (smaller = nearer);
    * sides ("left eye") are the subject's, as in MediaPipe.

Example:
    >>> import numpy as np
    >>> from portraitfx.face.types import Face, Pose
    >>> f = Face(bbox=np.array([10, 20, 110, 140], np.float32), score=0.9,
    ...          landmarks=np.zeros((478, 3), np.float32), pose=Pose(5.0, -2.0, 1.0))
    >>> Face.from_dict(f.to_dict()).pose.yaw
    5.0
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from portraitfx.face import topology

__all__ = ["Detection", "Face", "Pose"]


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees.

    Attributes:
        yaw: > 0 when the face turns toward the image's right side.
        pitch: > 0 when the face looks up.
        roll: > 0 when the face is rotated clockwise in the image.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.yaw, self.pitch, self.roll)


@dataclass
class Detection:
    """A face box from the detector.

    Attributes:
        bbox: ``(4,)`` float32 ``x0, y0, x1, y1`` in pixels.
        score: detector confidence in ``[0, 1]``.
        keypoints: ``(6, 2)`` float32: subject's right eye, left eye, nose tip,
            mouth centre, right ear tragion, left ear tragion.
    """

    bbox: np.ndarray
    score: float
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((6, 2), np.float32))

    @property
    def size(self) -> float:
        """Geometric mean of box width and height, in pixels."""
        w, h = self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1]
        return float(np.sqrt(max(w, 0) * max(h, 0)))


@dataclass
class Face:
    """One analysed face.

    Attributes:
        bbox: ``(4,)`` float32 ``x0, y0, x1, y1``: extent of the mesh in pixels.
        score: detection confidence in ``[0, 1]``.
        landmarks: ``(478, 3)`` float32 mesh in full-frame pixels.
        pose: head pose in degrees.
        embedding: ``(128,)`` float32 identity descriptor, when computed.
        track_id: stable id across video frames, when tracked.
    """

    bbox: np.ndarray
    score: float
    landmarks: np.ndarray
    pose: Pose = field(default_factory=Pose)
    embedding: np.ndarray | None = None
    track_id: int | None = None

    # -- derived views -------------------------------------------------------------
    @property
    def points2d(self) -> np.ndarray:
        """``(478, 2)`` float32 mesh without depth."""
        return self.landmarks[:, :2]

    @property
    def ibug68(self) -> np.ndarray:
        """``(68, 2)`` float32 iBUG 300-W view derived from the mesh."""
        return topology.ibug68(self.landmarks)

    @property
    def five_points(self) -> np.ndarray:
        """``(5, 2)`` float32 alignment points (eyes, nose tip, mouth corners; image-left first)."""
        return topology.five_points(self.landmarks)

    @property
    def eye_distance(self) -> float:
        """Inter-ocular distance (between iris centres) in pixels."""
        r, left = topology.eye_centers(self.landmarks)
        return float(np.linalg.norm(left - r))

    @property
    def center(self) -> np.ndarray:
        """``(2,)`` float32 centre of the box."""
        return np.array([(self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2], np.float32)

    @property
    def size(self) -> float:
        """Geometric mean of box width and height, in pixels."""
        w, h = self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1]
        return float(np.sqrt(max(w, 0) * max(h, 0)))

    def copy(self, **changes: Any) -> Face:
        """Return a copy (arrays copied) with ``changes`` applied."""
        base = replace(
            self,
            bbox=self.bbox.copy(),
            landmarks=self.landmarks.copy(),
            embedding=None if self.embedding is None else self.embedding.copy(),
        )
        return replace(base, **changes) if changes else base

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self, *, landmarks: bool = True) -> dict[str, Any]:
        """Return a JSON-serialisable dict (floats rounded to 0.01 px / 0.001)."""
        out: dict[str, Any] = {
            "bbox": [round(float(v), 2) for v in self.bbox],
            "score": round(float(self.score), 4),
            "pose": {
                k: round(float(v), 2)
                for k, v in zip(("yaw", "pitch", "roll"), self.pose.as_tuple(), strict=True)
            },
        }
        if self.track_id is not None:
            out["track_id"] = int(self.track_id)
        if landmarks:
            out["landmarks"] = np.round(self.landmarks.astype(np.float64), 2).tolist()
        if self.embedding is not None:
            out["embedding"] = np.round(self.embedding.astype(np.float64), 5).tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Face:
        """Inverse of :meth:`to_dict`."""
        pose = data.get("pose", {})
        emb = data.get("embedding")
        lms = data.get("landmarks")
        return cls(
            bbox=np.asarray(data["bbox"], np.float32),
            score=float(data.get("score", 1.0)),
            landmarks=np.asarray(lms, np.float32) if lms is not None else np.zeros((0, 3), np.float32),
            pose=Pose(float(pose.get("yaw", 0)), float(pose.get("pitch", 0)), float(pose.get("roll", 0))),
            embedding=None if emb is None else np.asarray(emb, np.float32),
            track_id=data.get("track_id"),
        )
