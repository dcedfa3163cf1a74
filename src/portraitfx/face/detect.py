"""Face detection with MediaPipe's shipped BlazeFace models.

Two models: ``"short"`` (faces within ~2 m of the camera, 128 px input) and
``"full"`` (faces up to ~5 m, 192 px input, better for small faces and group
photos). ``"auto"`` runs the full-range model and falls back to the short-range
one when it finds nothing.

The models see a downscaled frame, so on large frames (longest side at least
twice ``tile``) the full-range model also runs on overlapping tiles and the
results are merged: a 40 px face in a 1280x720 frame is found.

Example:
    >>> from portraitfx.face.detect import FaceDetector
    >>> with FaceDetector("auto") as detect:          # doctest: +SKIP
    ...     boxes = detect(image)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from portraitfx._validate import check_choice, check_image
from portraitfx.face import _mp
from portraitfx.face.types import Detection

__all__ = ["DetectorModel", "FaceDetector", "nms"]

DetectorModel = Literal["auto", "short", "full"]
_MODELS: tuple[str, ...] = ("auto", "short", "full")


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas ``(N, M)`` of boxes ``a (N, 4)`` and ``b (M, 4)``, and their areas."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter, area_a[:, None], area_b[None, :]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between boxes ``a (N, 4)`` and ``b (M, 4)`` -> ``(N, M)``."""
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def _overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area, ``a (N, 4)`` x ``b (M, 4)`` -> ``(N, M)``."""
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(np.minimum(area_a, area_b), 1e-9)


def nms(detections: list[Detection], iou: float = 0.4, contained: float = 0.7) -> list[Detection]:
    """Greedy non-maximum suppression, highest score first.

    A box is dropped if it overlaps a kept one by more than ``iou`` (intersection
    over union) or lies mostly inside it (intersection over its own area above
    ``contained``: the partial box of a face cut by a tile border).
    """
    order = sorted(detections, key=lambda d: -d.score)
    kept: list[Detection] = []
    for det in order:
        if kept:
            boxes = np.stack([k.bbox for k in kept])
            if (
                _iou(det.bbox[None], boxes)[0].max() > iou
                or _overlap_of_smaller(det.bbox[None], boxes)[0].max() > contained
            ):
                continue
        kept.append(det)
    return kept


def _starts(length: int, tile: int, step: int) -> list[int]:
    """Tile origins covering ``[0, length)`` with tiles of ``tile`` px, about ``step`` apart."""
    if length <= tile:
        return [0]
    n = int(np.ceil((length - tile) / step)) + 1
    return [int(round(v)) for v in np.linspace(0, length - tile, n)]


class FaceDetector:
    """Detect faces in RGB images.

    Args:
        model: ``"auto"``, ``"short"`` or ``"full"`` (see module docs).
        min_score: detections below this confidence are dropped.
        tile: tile side for large frames (None: never tile).

    Call it with an ``H x W x 3`` uint8 RGB image; it returns detections sorted by
    score, highest first. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, model: DetectorModel = "auto", min_score: float = 0.5, tile: int | None = 640) -> None:
        self.model = check_choice(model, _MODELS, "detector model")
        self.min_score = float(min_score)
        self.tile = tile
        self._graphs: dict[int, _mp.Graph] = {}

    def _graph(self, selection: int) -> _mp.Graph:
        graph = self._graphs.get(selection)
        if graph is None:
            graph = _mp.face_detection(selection, self.min_score)
            self._graphs[selection] = graph
        return graph

    def _run(self, image: np.ndarray, selection: int) -> list[Detection]:
        result = self._graph(selection).process(image)
        h, w = image.shape[:2]
        out: list[Detection] = []
        for det in result.detections or []:
            box = det.location_data.relative_bounding_box
            x0, y0 = box.xmin * w - 0.5, box.ymin * h - 0.5
            bbox = np.array([x0, y0, x0 + box.width * w, y0 + box.height * h], np.float32)
            kps = np.array(
                [[k.x * w - 0.5, k.y * h - 0.5] for k in det.location_data.relative_keypoints], np.float32
            )
            out.append(Detection(bbox=bbox, score=float(det.score[0]), keypoints=kps))
        return out

    def _tiles(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        tile = int(self.tile or 0)
        if tile < 64 or max(h, w) < 2 * tile:
            return []
        out: list[Detection] = []
        step = tile * 3 // 4
        for y in _starts(h, tile, step):
            for x in _starts(w, tile, step):
                part = np.ascontiguousarray(image[y : y + tile, x : x + tile])
                for det in self._run(part, 1):
                    offset = np.array([x, y], np.float32)
                    det.bbox = det.bbox + np.tile(offset, 2)
                    det.keypoints = det.keypoints + offset
                    out.append(det)
        return out

    def __call__(self, image: np.ndarray, *, tiles: bool = True) -> list[Detection]:
        """Detect faces in ``image``; ``tiles=False`` skips the tiled pass on large frames."""
        image = check_image(image)
        if self.model == "short":
            dets = self._run(image, 0)
        else:
            dets = self._run(image, 1) + (self._tiles(image) if tiles else [])
            if not dets and self.model == "auto":
                dets = self._run(image, 0)
        return nms(dets)

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for graph in self._graphs.values():
            graph.close()
        self._graphs.clear()

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
