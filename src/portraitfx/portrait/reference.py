"""Reference photos of the person: found, aligned, cleaned up, measured.

For each reference photo: its one face (several faces or none is a clear error),
an FFHQ-aligned crop (what the identity adapter sees), light skin smoothing
(edge-preserving, skin only) and a mild contrast lift, the face and hair masks of the
crop, and the dlib identity vector used to rank the candidates. Several photos of the
same person are checked to be one person and their identity vectors averaged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from portraitfx.errors import ConfigError, HairNotFoundError, InputError, NoFaceError

__all__ = ["FaceEncoder", "Reference", "mean_embedding", "prepare_references", "smooth_skin"]

CROP = 512


@dataclass
class Reference:
    """One reference photo, prepared.

    Attributes:
        path: where it came from (or ``"<array>"``).
        image: the photo (RGB uint8).
        crop: the FFHQ-aligned, cleaned-up face crop (``CROP x CROP``).
        face_mask, hair_mask: masks of the crop (float32 in [0, 1]).
        embedding: the dlib 128-d identity vector of the photo's face.
    """

    path: str
    image: np.ndarray
    crop: np.ndarray
    face_mask: np.ndarray
    hair_mask: np.ndarray
    embedding: np.ndarray
    face: Any = None
    notes: list[str] = field(default_factory=list)


def smooth_skin(image: np.ndarray, skin: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """Edge-preserving smoothing of the skin (bilateral), blended by ``skin`` x ``strength``, and a mild contrast lift."""
    d = max(3, int(round(image.shape[0] / 100)))
    smooth = cv2.bilateralFilter(image, d, 25, d * 2)
    w = (np.clip(skin, 0, 1) * strength)[..., None]
    out = image.astype(np.float32) * (1 - w) + smooth.astype(np.float32) * w
    lab = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2Lab)
    clahe = cv2.createCLAHE(clipLimit=1.2, tileGridSize=(4, 4))
    lab[..., 0] = clahe.apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)


def prepare_references(
    photos: list[str | os.PathLike[str] | np.ndarray],
    *,
    analyzer: Any = None,
    embedder: Any = None,
    same_person: float = 0.6,
) -> list[Reference]:
    """Prepare reference photos (see the module).

    Raises:
        NoFaceError: a photo has no face. InputError: a photo has several faces, or the
        photos are not of one person.
    """
    from portraitfx.face.align import align_face
    from portraitfx.face.analyze import FaceAnalyzer
    from portraitfx.face.identity import FaceEmbedder, identity_distance
    from portraitfx.face.regions import region_mask
    from portraitfx.io.images import load_image

    if not photos:
        raise ConfigError("give at least one reference photo of the person")
    own_a, own_e = analyzer is None, embedder is None
    analyzer = analyzer or FaceAnalyzer(max_faces=4)
    embedder = embedder or FaceEmbedder()
    refs: list[Reference] = []
    try:
        for src in photos:
            name = "<array>" if isinstance(src, np.ndarray) else str(src)
            image = src if isinstance(src, np.ndarray) else load_image(src)
            faces = analyzer.analyze(image)
            if not faces:
                raise NoFaceError(f"no face found in reference photo '{name}'")
            if len(faces) > 1 and faces[1].size > 0.5 * faces[0].size:
                raise InputError(
                    f"reference photo '{name}' shows {len(faces)} faces; crop it to the one person"
                )
            face = faces[0]
            if face.eye_distance < 30:
                raise InputError(
                    f"the face in reference photo '{name}' is too small ({face.eye_distance:.0f} px between the eyes; "
                    "30 or more needed)"
                )
            aligned = align_face(image, face, size=CROP, template="ffhq", scale=0.9)
            lm = aligned.to_crop(face.landmarks)
            skin = region_mask(aligned.image.shape, lm, "skin", feather=0.05)
            face_mask = region_mask(aligned.image.shape, lm, "face_forehead", feather=0.05)
            try:
                from portraitfx.effects.hair.analysis import analyze_hair

                crop_face = face.copy(landmarks=lm.astype(np.float32))
                a = analyze_hair(aligned.image, crop_face)
                hair = np.zeros(aligned.image.shape[:2], np.float32)
                x0, y0, x1, y1 = a.box
                hair[y0:y1, x0:x1] = a.alpha
                notes: list[str] = []
            except HairNotFoundError as err:  # no hair (bald, a hat) is fine for a portrait
                hair = np.zeros(aligned.image.shape[:2], np.float32)
                notes = [f"no hair mask: {err}"]
            refs.append(
                Reference(
                    path=name,
                    image=image,
                    crop=smooth_skin(aligned.image, skin),
                    face_mask=face_mask,
                    hair_mask=hair,
                    embedding=embedder(image, face),
                    face=face,
                    notes=notes,
                )
            )
    finally:
        if own_a:
            analyzer.close()
        if own_e:
            embedder.close()
    for r in refs[1:]:
        d = identity_distance(refs[0].embedding, r.embedding)
        if d > same_person:
            raise InputError(
                f"reference photos '{refs[0].path}' and '{r.path}' look like different people (identity distance {d:.2f})"
            )
    return refs


def mean_embedding(refs: list[Reference]) -> np.ndarray:
    """The references' identity vectors averaged (renormalised to their mean length)."""
    e = np.stack([r.embedding for r in refs]).astype(np.float64)
    m = e.mean(0)
    return (m / max(np.linalg.norm(m), 1e-9) * np.linalg.norm(e, axis=1).mean()).astype(np.float32)


class FaceEncoder:
    """A face-recognition ONNX model for FaceID adapters (e.g. an ArcFace export).

    Contract: one input, ``1 x 3 x S x S`` float32 RGB in [0, 1], the face aligned in the
    ArcFace framing at ``S`` (from the input shape, else 112); first output ``1 x D``.
    Vectors are L2-normalised (as InsightFace's ``normed_embedding``).
    """

    def __init__(self, model: str | os.PathLike[str]) -> None:
        from portraitfx.models.load import open_onnx_session

        self.session = open_onnx_session(model)
        inp = self.session.get_inputs()[0]
        self._name = inp.name
        side = inp.shape[-1] if isinstance(inp.shape[-1], int) else 112
        self.size = int(side)

    def __call__(self, image: np.ndarray, face: Any) -> np.ndarray:
        from portraitfx.face.align import align_face

        crop = align_face(image, face, size=self.size, template="arcface").image
        x = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        vec = np.asarray(self.session.run(None, {self._name: x})[0], np.float32).reshape(-1)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)
