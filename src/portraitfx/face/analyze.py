"""Still-image face analysis: detect -> mesh -> pose (-> identity embedding).

Example:
    >>> from portraitfx.face.analyze import FaceAnalyzer
    >>> with FaceAnalyzer(max_faces=4, embed=True) as analyzer:   # doctest: +SKIP
    ...     result = analyzer.run(image)
    ...     print(len(result.faces), result.skipped_small)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from portraitfx._validate import check_image, with_overrides
from portraitfx.errors import ConfigError, NoFaceError
from portraitfx.face.detect import DetectorModel, FaceDetector, _iou
from portraitfx.face.mesh import FaceMesher, mesh_bbox
from portraitfx.face.pose import estimate_pose
from portraitfx.face.types import Detection, Face

__all__ = ["Analysis", "AnalyzeOptions", "FaceAnalyzer", "require_face"]


@dataclass(frozen=True)
class AnalyzeOptions:
    """Options of :class:`FaceAnalyzer` (the CLI flags map 1:1 to these).

    Attributes:
        max_faces: most faces returned (largest first).
        detector: ``"auto"``, ``"short"`` or ``"full"`` range detection model.
        min_score: least detection confidence.
        min_face_size: faces whose box is smaller than this (pixels) are skipped as
            too small to analyse reliably; they are counted in ``Analysis.skipped_small``.
        embed: also compute identity embeddings (dlib, ~20-60 ms per face).
    """

    max_faces: int = 8
    detector: DetectorModel = "auto"
    min_score: float = 0.5
    min_face_size: float = 24.0
    embed: bool = False

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ConfigError(f"max_faces must be at least 1, got {self.max_faces}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"min_score must be within [0, 1], got {self.min_score}")
        if self.min_face_size < 0:
            raise ConfigError(f"min_face_size must be >= 0, got {self.min_face_size}")


@dataclass
class Analysis:
    """Result of analysing one image.

    Attributes:
        faces: analysed faces, largest first.
        width, height: image size in pixels.
        skipped_small: detections dropped for being under ``min_face_size``.
        unmeshed: detections where the mesh found no face (often profiles or occlusions).
    """

    faces: list[Face] = field(default_factory=list)
    width: int = 0
    height: int = 0
    skipped_small: int = 0
    unmeshed: int = 0

    def to_dict(self, *, landmarks: bool = True) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict(landmarks=landmarks) for f in self.faces],
            "skipped_small": self.skipped_small,
            "unmeshed": self.unmeshed,
        }


def require_face(analysis: Analysis, source: str = "the image") -> list[Face]:
    """Return ``analysis.faces`` or raise :class:`NoFaceError` saying why none was usable."""
    if analysis.faces:
        return analysis.faces
    why = []
    if analysis.skipped_small:
        why.append(f"{analysis.skipped_small} too small")
    if analysis.unmeshed:
        why.append(f"{analysis.unmeshed} not usable (turned away or covered?)")
    detail = f" ({', '.join(why)})" if why else ""
    raise NoFaceError(
        f"no face found in {source}{detail}; use a photo with a clearly visible, roughly frontal face"
    )


class FaceAnalyzer:
    """Detect, mesh and measure every face in still images.

    Args:
        options: :class:`AnalyzeOptions`; keyword arguments override its fields.

    Models load on first use and are kept until :meth:`close`.
    """

    def __init__(self, options: AnalyzeOptions | None = None, **overrides: Any) -> None:
        self.options = with_overrides(options or AnalyzeOptions(), overrides)
        self._detector = FaceDetector(self.options.detector, self.options.min_score)
        self._mesher = FaceMesher()
        self._embedder: Any = None

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Face boxes only (no mesh), highest score first."""
        return self._detector(check_image(image))

    def run(self, image: np.ndarray) -> Analysis:
        """Analyse ``image`` (``H x W x 3`` uint8 RGB) and return an :class:`Analysis`."""
        image = check_image(image)
        h, w = image.shape[:2]
        out = Analysis(width=w, height=h)
        dets = sorted(self._detector(image), key=lambda d: -d.size)
        faces: list[Face] = []
        for det in dets:
            if len(faces) >= self.options.max_faces:
                break
            if det.size < self.options.min_face_size:
                out.skipped_small += 1
                continue
            mesh = self._mesher(image, det)
            if mesh is None:
                out.unmeshed += 1
                continue
            box = mesh_bbox(mesh)
            if faces and _iou(box[None], np.stack([f.bbox for f in faces]))[0].max() > 0.5:
                continue  # the same face reached through two detections
            faces.append(Face(bbox=box, score=det.score, landmarks=mesh, pose=estimate_pose(mesh)))
        if self.options.embed and faces:
            faces = self.embed(image, faces)
        out.faces = faces
        return out

    def analyze(self, image: np.ndarray) -> list[Face]:
        """Shortcut for ``run(image).faces``."""
        return self.run(image).faces

    def embed(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Return copies of ``faces`` with identity embeddings filled in."""
        if self._embedder is None:
            from portraitfx.face.identity import FaceEmbedder

            self._embedder = FaceEmbedder()
        return [f.copy(embedding=self._embedder(image, f)) for f in faces]

    def close(self) -> None:
        self._detector.close()
        self._mesher.close()
        if self._embedder is not None:
            self._embedder.close()

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaceAnalyzer({asdict(self.options)})"
