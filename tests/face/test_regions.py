"""Region masks: inside the face, non-empty, correct holes, feathering, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from portraitfx.errors import ConfigError
from portraitfx.face import topology as T
from portraitfx.face.regions import REGIONS, forehead_polygon, region_mask, region_masks


@pytest.fixture(scope="module")
def masks(astronaut, astronaut_face):
    return region_masks(astronaut.shape, astronaut_face.landmarks)


@pytest.mark.parametrize("name", REGIONS)
def test_every_region_non_empty_and_inside_the_extended_face(masks, name, astronaut_face):
    m = masks[name]
    assert m.dtype == np.float32 and m.shape == (512, 512)
    assert m.max() == pytest.approx(1.0) and m.min() >= 0.0
    assert (m > 0.5).sum() > 20
    outer = cv2.dilate((masks["face_forehead"] > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
    assert np.all(outer[m > 0.5] == 1), f"{name} spills outside the face"


def test_inner_regions_are_inside_the_oval(masks):
    face = cv2.dilate((masks["face"] > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    for name in ("eyes", "brows", "lips", "mouth", "nose"):
        assert np.all(face[masks[name] > 0.5] == 1), name


def test_skin_excludes_eyes_brows_lips(masks):
    skin = masks["skin"] > 0.5
    for hole in ("eyes", "brows", "lips"):
        core = cv2.erode((masks[hole] > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert not np.any(skin & core), hole
    assert skin.sum() > 0.6 * (masks["face"] > 0.5).sum()


def test_lips_exclude_mouth_opening_and_eyes_are_two(masks):
    assert not np.any((masks["lips"] > 0.5) & (cv2.erode((masks["mouth"] > 0.5).astype(np.uint8), None) > 0))
    n, _ = cv2.connectedComponents((masks["eyes"] > 0.5).astype(np.uint8))
    assert n - 1 == 2
    assert np.allclose(np.maximum(masks["left_eye"], masks["right_eye"]), masks["eyes"], atol=1e-6)


def test_forehead_is_above_the_brows_and_extends_the_oval(astronaut_face, masks):
    lm = astronaut_face.landmarks
    ys, xs = np.nonzero(masks["forehead"] > 0.5)
    # "above" along the face's own up direction (the head is slightly rolled)
    up = lm[T.FOREHEAD, :2] - lm[T.CHIN, :2]
    up /= np.linalg.norm(up)
    brows = lm[list(T.LEFT_EYEBROW + T.RIGHT_EYEBROW), :2]
    assert (np.stack([xs, ys], 1) @ up).min() >= (brows @ up).max() - 2.0
    ext = forehead_polygon(lm)
    assert ext[:, 1].min() < lm[list(T.FACE_OVAL), 1].min() - 5
    assert masks["face_forehead"].sum() > masks["face"].sum()


def test_feather_softens_edges_proportionally_to_face_size(astronaut, astronaut_face):
    hard = region_mask(astronaut.shape, astronaut_face.landmarks, "face")
    soft = region_mask(astronaut.shape, astronaut_face.landmarks, "face", feather=0.1)
    partial = lambda m: ((m > 0.05) & (m < 0.95)).sum()  # noqa: E731
    assert partial(soft) > 5 * partial(hard)
    assert soft.sum() == pytest.approx(hard.sum(), rel=0.05)
    big = cv2.resize(astronaut, (1024, 1024))
    lm2 = astronaut_face.landmarks * np.array([2, 2, 2], np.float32) + np.array([0.5, 0.5, 0], np.float32)
    soft2 = region_mask(big.shape, lm2, "face", feather=0.1)
    assert partial(soft2) == pytest.approx(4 * partial(soft), rel=0.25)


def test_union_and_errors(astronaut, astronaut_face):
    lm = astronaut_face.landmarks
    both = region_mask(astronaut.shape, lm, ["eyes", "lips"])
    assert np.allclose(
        both, np.maximum(region_mask(astronaut.shape, lm, "eyes"), region_mask(astronaut.shape, lm, "lips"))
    )
    with pytest.raises(ConfigError, match="unknown region 'ears'"):
        region_mask(astronaut.shape, lm, "ears")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="mesh"):
        region_mask(astronaut.shape, lm[:68], "face")


def test_face_at_the_border_is_clipped(astronaut_face):
    lm = astronaut_face.landmarks - np.array([200, 90, 0], np.float32)  # face half outside the frame
    m = region_mask((120, 120), lm, "face_forehead", feather=0.05)
    assert m.shape == (120, 120) and m.max() > 0.99
