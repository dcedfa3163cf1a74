"""Face tracking through video: per-face mesh tracking, stable ids, One-Euro smoothing.

Each track owns a MediaPipe face-mesh graph in video mode that sees only an
upright crop following its face (placed from the previous frame's landmarks), so
MediaPipe's own landmark-to-landmark tracking runs at the crop's resolution: small
faces in wide shots track as well as selfies, and a track's identity is its graph
(no per-frame re-matching that could swap ids when faces cross). The full-range
detector runs every ``detect_every`` frames to pick up new faces; a face that
overlaps a live track is ignored. Landmarks are smoothed per track with a
One-Euro filter scaled by face size.

Example:
    >>> with FaceTracker(max_faces=2) as tracker:          # doctest: +SKIP
    ...     for frame in VideoReader("clip.mp4"):
    ...         faces = tracker.update(frame.image, frame.time)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from portraitfx._validate import check_image
from portraitfx.errors import ConfigError
from portraitfx.face import _mp
from portraitfx.face.align import invert_affine, transform_points
from portraitfx.face.detect import FaceDetector, _iou, _overlap_of_smaller
from portraitfx.face.mesh import FaceMesher, landmarks_from_result, mesh_bbox
from portraitfx.face.pose import estimate_pose
from portraitfx.face.smooth import OneEuroFilter
from portraitfx.face.topology import eye_centers
from portraitfx.face.types import Detection, Face

__all__ = ["FaceTracker", "assign_tracks"]


def assign_tracks(
    previous: np.ndarray, current: np.ndarray, min_iou: float = 0.2
) -> tuple[list[tuple[int, int]], list[int]]:
    """Match current boxes to previous ones.

    Args:
        previous: ``(N, 4)`` boxes of live tracks.
        current: ``(M, 4)`` boxes found in this frame.
        min_iou: pairs overlapping less than this are not matched.

    Returns:
        ``(pairs, unmatched)``: ``(prev_index, cur_index)`` pairs and the indices of
        current boxes that start new tracks.
    """
    if len(previous) == 0 or len(current) == 0:
        return [], list(range(len(current)))
    iou = _iou(np.asarray(previous, np.float64), np.asarray(current, np.float64))
    rows, cols = linear_sum_assignment(-iou)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]
    matched = {c for _, c in pairs}
    return pairs, [c for c in range(len(current)) if c not in matched]


@dataclass
class _Track:
    track_id: int
    graph: _mp.Graph
    matrix: np.ndarray  # frame -> crop for the next frame
    raw: np.ndarray  # last unsmoothed mesh, frame pixels
    filter: OneEuroFilter
    last_frame: int


class FaceTracker:
    """Track faces frame to frame.

    Args:
        max_faces: most faces tracked at once.
        smooth: apply One-Euro smoothing to landmarks.
        min_cutoff: One-Euro cutoff at rest (Hz); lower = steadier.
        beta: One-Euro speed coefficient; higher = less lag on fast moves.
        detect_every: run the detector every this many frames to find new faces
            (always when no face is tracked); every third run also searches tiles
            of large frames for small faces.
        max_age: frames a lost face keeps its id: if it is found again (by box
            overlap) within that many frames, the id is re-used.
        min_score: detection confidence to start tracking a face.
        min_face_size: faces smaller than this (pixels) are not tracked.
        crop_size: side of the per-face crop the mesh runs on.
        detector: detection model for new faces (``"full"``, ``"short"`` or ``"auto"``).
    """

    def __init__(
        self,
        max_faces: int = 4,
        *,
        smooth: bool = True,
        min_cutoff: float = 1.5,
        beta: float = 2.0,
        detect_every: int = 10,
        max_age: int = 15,
        min_score: float = 0.5,
        min_face_size: float = 24.0,
        crop_size: int = 256,
        detector: str = "full",
    ) -> None:
        if max_faces < 1:
            raise ConfigError(f"max_faces must be at least 1, got {max_faces}")
        if detect_every < 1:
            raise ConfigError(f"detect_every must be at least 1, got {detect_every}")
        self.max_faces = int(max_faces)
        self.smooth = smooth
        self.min_cutoff, self.beta = float(min_cutoff), float(beta)
        self.detect_every, self.min_score = int(detect_every), float(min_score)
        self.max_age = int(max_age)
        self.min_face_size = float(min_face_size)
        self.crop_size = int(crop_size)
        self._detector = FaceDetector(detector, min_score)  # type: ignore[arg-type]
        self._placer = FaceMesher(crop_size=self.crop_size)
        self._spare: list[_mp.Graph] = []
        self._tracks: list[_Track] = []
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (ids start again from 0)."""
        for tr in self._tracks:
            self._release(tr.graph)
        self._tracks = []
        self._lost: list[tuple[int, np.ndarray, int]] = []  # (id, last box, last frame)
        self._next_id = 0
        self._detections = 0
        self._frame = -1
        self._last_time: float | None = None

    # -- graphs -----------------------------------------------------------------------
    def _acquire(self) -> _mp.Graph:
        if self._spare:
            graph = self._spare.pop()
            graph.reset()
            return graph
        return _mp.face_mesh(static=False, max_faces=1, min_score=self.min_score)

    def _release(self, graph: _mp.Graph) -> None:
        self._spare.append(graph)

    # -- per frame --------------------------------------------------------------------
    def update(self, image: np.ndarray, time: float | None = None) -> list[Face]:
        """Process the next frame.

        Args:
            image: ``H x W x 3`` uint8 RGB frame.
            time: its timestamp in seconds (default: frame index / 30).

        Returns:
            Faces with ``track_id`` set, sorted by id.
        """
        image = check_image(image)
        self._frame += 1
        t = self._frame / 30.0 if time is None else float(time)
        if self._last_time is not None and t <= self._last_time:
            t = self._last_time + 1e-3
        self._last_time = t

        faces: list[Face] = []
        alive: list[_Track] = []
        for tr in self._tracks:
            mesh = self._mesh_in_crop(tr.graph, image, tr.matrix)
            if mesh is None or self._duplicate(mesh, alive):
                self._release(tr.graph)
                self._lost.append((tr.track_id, mesh_bbox(tr.raw), tr.last_frame))
                continue
            alive.append(tr)
            faces.append(self._advance(tr, mesh, t))
        self._tracks = alive

        self._lost = [lost for lost in self._lost if self._frame - lost[2] <= self.max_age]
        if (not self._tracks or self._frame % self.detect_every == 0) and len(self._tracks) < self.max_faces:
            dets = self._new_detections(image)
            # faces found again near where a track was lost get their old id back
            lost_boxes = np.array([box for _, box, _ in self._lost], np.float32).reshape(-1, 4)
            pairs, _ = assign_tracks(lost_boxes, np.array([d.bbox for d in dets], np.float32).reshape(-1, 4))
            revived = {ci: li for li, ci in pairs}
            for ci, det in enumerate(dets):
                if len(self._tracks) >= self.max_faces:
                    break
                old_id = self._lost[revived[ci]][0] if ci in revived else None
                face = self._start(image, det, t, old_id)
                if face is not None:
                    faces.append(face)
            used = {f.track_id for f in faces}
            self._lost = [lost for lost in self._lost if lost[0] not in used]
        return sorted(faces, key=lambda f: f.track_id or 0)

    def _mesh_in_crop(self, graph: _mp.Graph, image: np.ndarray, matrix: np.ndarray) -> np.ndarray | None:
        crop = cv2.warpAffine(
            image,
            matrix,
            (self.crop_size, self.crop_size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        result = graph.process(crop)
        if not result.multi_face_landmarks:
            return None
        mesh = landmarks_from_result(result.multi_face_landmarks[0], self.crop_size, self.crop_size)
        return transform_points(mesh, invert_affine(matrix))

    def _duplicate(self, mesh: np.ndarray, tracks: list[_Track]) -> bool:
        if not tracks:
            return False
        boxes = np.stack([mesh_bbox(tr.raw) for tr in tracks])
        return bool(_iou(mesh_bbox(mesh)[None], boxes)[0].max() > 0.5)

    def _new_detections(self, image: np.ndarray) -> list[Detection]:
        # the tiled pass (small faces in large frames) costs ~6 full passes: every third time
        self._detections += 1
        tiles = self._detections % 3 == 1
        dets = [d for d in self._detector(image, tiles=tiles) if d.size >= self.min_face_size]
        if self._tracks and dets:
            # a detection that mostly lies on a tracked face is that face
            live = np.stack([mesh_bbox(tr.raw) for tr in self._tracks])
            dets = [d for d in dets if _overlap_of_smaller(d.bbox[None], live)[0].max() < 0.5]
        return sorted(dets, key=lambda d: -d.size)

    def _crop_from_mesh(self, mesh: np.ndarray) -> np.ndarray:
        r, left = eye_centers(mesh)
        x0, y0, x1, y1 = mesh_bbox(mesh)
        det = Detection(
            bbox=np.array([x0, y0, x1, y1], np.float32),
            score=1.0,
            keypoints=np.stack([r, left, r, r, r, r]).astype(np.float32),
        )
        # the mesh box is tighter than a detector box: frame a little more
        return self._placer.crop_matrix(det, context=1.8)

    def _start(self, image: np.ndarray, det: Detection, t: float, track_id: int | None = None) -> Face | None:
        graph = self._acquire()
        mesh = self._mesh_in_crop(graph, image, self._placer.crop_matrix(det))
        if mesh is None or self._duplicate(mesh, self._tracks):
            self._release(graph)
            return None
        r, left = eye_centers(mesh)
        filt = OneEuroFilter(self.min_cutoff, self.beta, 1.0, scale=float(np.linalg.norm(left - r)) or 1.0)
        if track_id is None:
            track_id, self._next_id = self._next_id, self._next_id + 1
        tr = _Track(track_id, graph, self._crop_from_mesh(mesh), mesh, filt, self._frame)
        self._tracks.append(tr)
        return self._advance(tr, mesh, t)

    def _advance(self, tr: _Track, mesh: np.ndarray, t: float) -> Face:
        tr.raw, tr.last_frame = mesh, self._frame
        tr.matrix = self._crop_from_mesh(mesh)
        out = tr.filter(mesh, t) if self.smooth else mesh
        out = np.asarray(out, np.float32)
        return Face(
            bbox=mesh_bbox(out), score=1.0, landmarks=out, pose=estimate_pose(out), track_id=tr.track_id
        )

    def close(self) -> None:
        """Release every MediaPipe graph."""
        for tr in self._tracks:
            self._spare.append(tr.graph)
        self._tracks = []
        for graph in self._spare:
            graph.close()
        self._spare = []
        self._detector.close()
        self._placer.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
