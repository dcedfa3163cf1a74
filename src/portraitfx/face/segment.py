"""Person and coarse hair segmentation.

The person mask comes from MediaPipe's shipped selfie-segmentation model
(``"general"``: 256x256 input; ``"landscape"``: 144x256, faster). Hair is coarse:
the part of the person, inside a head-shaped region built from the face mesh,
that is neither face skin nor below the jaw line — good enough to drive hair
recolouring previews and to keep hair out of skin masks; the hair-editing models
of later stages refine it.

Example:
    >>> with PersonSegmenter() as seg:                    # doctest: +SKIP
    ...     person = seg(image)                           # H x W float32 in [0, 1]
    ...     hair = hair_mask(person, face.landmarks)
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from portraitfx._validate import check_choice, check_image
from portraitfx.face import _mp
from portraitfx.face import topology as T
from portraitfx.face.regions import face_frame, region_mask

__all__ = ["PersonSegmenter", "hair_mask"]


class PersonSegmenter:
    """Soft person mask of an RGB image.

    Args:
        model: ``"general"`` or ``"landscape"``.
    """

    def __init__(self, model: Literal["general", "landscape"] = "general") -> None:
        self.model = check_choice(model, ("general", "landscape"), "segmentation model")
        self._graph: _mp.Graph | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Return an ``H x W`` float32 mask in ``[0, 1]`` (1 = person)."""
        image = check_image(image)
        if self._graph is None:
            self._graph = _mp.selfie_segmentation(0 if self.model == "general" else 1)
        result = self._graph.process(image)
        return np.clip(np.asarray(result.segmentation_mask, np.float32), 0.0, 1.0)

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self) -> PersonSegmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hair_mask(person: np.ndarray, landmarks: np.ndarray, *, feather: float = 0.03) -> np.ndarray:
    """Coarse hair mask of one face.

    Args:
        person: ``H x W`` float person mask from :class:`PersonSegmenter`.
        landmarks: ``(478, 2|3)`` mesh of the face.
        feather: edge softness as a fraction of the inter-ocular distance.

    Returns:
        ``H x W`` float32 mask in ``[0, 1]``.
    """
    h, w = person.shape[:2]
    lm = np.asarray(landmarks, np.float32)
    eye_mid, iod, up, across, face_h = face_frame(lm)
    # Head region: an ellipse around the skull, from a little below the chin to well
    # above the forehead, wide enough for hair at the sides.
    centre = eye_mid + up * face_h * 0.5
    axes = (int(round(iod * 2.1)), int(round(face_h * 1.7)))
    angle = float(np.degrees(np.arctan2(across[1], across[0])))
    head = np.zeros((h, w), np.uint8)
    cv2.ellipse(
        head, (int(round(centre[0])), int(round(centre[1]))), axes, angle, 0, 360, 255, -1, cv2.LINE_AA
    )
    head_f = head.astype(np.float32) / 255.0
    # Below the mouth and in line with the face is neck or beard, not this mask's job;
    # beside it, long hair may fall to the shoulders.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mouth = lm[[T.MOUTH_RIGHT, T.MOUTH_LEFT], :2].mean(0)
    below = ((xx - mouth[0]) * up[0] + (yy - mouth[1]) * up[1]) < 0
    beside = np.abs((xx - mouth[0]) * across[0] + (yy - mouth[1]) * across[1]) > iod * 1.3
    keep = ~below | beside
    face = region_mask(person.shape, lm, "face_forehead", forehead=0.35, feather=0.0)
    hair = person.astype(np.float32) * head_f * keep * (1.0 - face)
    hair[hair < 0.5] = 0.0
    if feather > 0:
        sigma = feather * iod
        hair = cv2.GaussianBlur(hair, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.clip(hair, 0.0, 1.0)
