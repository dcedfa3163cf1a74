"""Person and coarse hair masks on real portraits."""

from __future__ import annotations

import cv2
import numpy as np

from portraitfx.face.regions import region_mask
from portraitfx.face.segment import PersonSegmenter, hair_mask


def test_person_and_hair(astronaut, astronaut_face):
    with PersonSegmenter() as seg:
        person = seg(astronaut)
    assert person.shape == astronaut.shape[:2] and person.dtype == np.float32
    face = region_mask(astronaut.shape, astronaut_face.landmarks, "face") > 0.5
    assert person[face].mean() > 0.9
    assert person[:40, 420:].mean() < 0.1  # sky/background at the top right
    hair = hair_mask(person, astronaut_face.landmarks)
    core = cv2.erode(face.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # the feathered edge may overlap
    assert hair[core].max() < 0.05, "hair must not cover the face"
    x0, y0, x1, _ = astronaut_face.bbox.astype(int)
    above = hair[max(y0 - 30, 0) : y0, x0:x1]
    assert above.mean() > 0.5, "the hair on top of the head is found"
    assert hair[400:].max() < 0.05, "nothing far below the head"


def test_landscape_model_agrees(astronaut):
    with PersonSegmenter() as a, PersonSegmenter("landscape") as b:
        pa, pb = a(astronaut) > 0.5, b(astronaut) > 0.5
    assert (pa & pb).sum() / (pa | pb).sum() > 0.8
