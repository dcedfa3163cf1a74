"""Still-image analysis on real portraits: golden landmarks, equivariance, several/tiny/no faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import portraitfx as pfx
from portraitfx.errors import ConfigError, InputError, NoFaceError
from portraitfx.face import topology as T
from portraitfx.face.analyze import AnalyzeOptions, FaceAnalyzer, require_face


def test_astronaut_golden_landmarks(astronaut_face):
    """Irises, nose tip and mouth corners where a person would click them (±3 px)."""
    lm = astronaut_face.landmarks
    assert lm.shape == (478, 3) and lm.dtype == np.float32
    golden = {
        T.RIGHT_IRIS_CENTER: (203, 101),
        T.LEFT_IRIS_CENTER: (246, 103),
        T.NOSE_TIP: (223, 130),
        T.MOUTH_RIGHT: (202, 139),
        T.MOUTH_LEFT: (245, 141),
    }
    for idx, xy in golden.items():
        assert np.linalg.norm(lm[idx, :2] - xy) < 3.0, (idx, lm[idx, :2])
    x0, y0, x1, y1 = astronaut_face.bbox
    assert 160 < x0 < x1 < 290 and 50 < y0 < y1 < 195
    assert astronaut_face.score > 0.7


def _equivariance_error(analyzer, image, angle, scale, shift):
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += shift
    warped = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    base = analyzer.analyze(image)[0]
    moved = analyzer.analyze(warped)[0]
    expected = base.landmarks[:, :2] @ m[:, :2].T + m[:, 2]
    err = np.linalg.norm(moved.landmarks[:, :2] - expected, axis=1).mean()
    return err / moved.eye_distance, base, moved


@pytest.mark.parametrize(
    ("img_name", "angle", "scale", "shift"),
    [("astronaut", 20, 0.8, (30, -15)), ("astronaut", -35, 1.2, (-20, 10)), ("obama", 15, 0.7, (10, 40))],
)
def test_landmarks_equivariant(request, analyzer, img_name, angle, scale, shift):
    image = request.getfixturevalue(img_name)
    err, base, moved = _equivariance_error(analyzer, image, angle, scale, shift)
    assert err < 0.02, f"mean landmark error {err:.3%} of inter-ocular distance"
    # in-plane rotation shows up as roll (counter-clockwise image rotation = negative roll)
    assert moved.pose.roll - base.pose.roll == pytest.approx(-angle, abs=3)


def test_several_faces_sorted_by_size(analyzer, obama, biden):
    h = 480
    a = cv2.resize(obama, (int(obama.shape[1] * h / obama.shape[0]), h))
    b = cv2.resize(biden, (int(biden.shape[1] * 300 / biden.shape[0]), 300))
    canvas = np.full((h, a.shape[1] + b.shape[1], 3), 40, np.uint8)
    canvas[:, : a.shape[1]] = a
    canvas[90 : 90 + b.shape[0], a.shape[1] :] = b
    faces = analyzer.analyze(canvas)
    assert len(faces) == 2
    assert faces[0].size > faces[1].size
    assert faces[0].center[0] < a.shape[1] < faces[1].center[0]
    assert len(FaceAnalyzer(max_faces=1).analyze(canvas)) == 1


def test_no_face_is_empty_and_require_face_explains(analyzer):
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
    result = analyzer.run(noise)
    assert result.faces == []
    with pytest.raises(NoFaceError, match=r"no face found in noise\.png"):
        require_face(result, "noise.png")


def test_tiny_faces_are_skipped_and_counted(astronaut):
    small = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)  # face ~ 25 px
    with FaceAnalyzer(min_face_size=40) as a:
        result = a.run(small)
    assert result.faces == [] and result.skipped_small == 1
    with pytest.raises(NoFaceError, match="too small"):
        require_face(result, "small.png")


def test_partial_faces_do_not_crash(analyzer, data_dir):
    for name in ("obama_partial_face.jpg", "obama_partial_face2.jpg"):
        faces = analyzer.analyze(pfx.load_image(data_dir / name))
        assert len(faces) == 1, name  # the visible part of the face is found
        assert np.isfinite(faces[0].landmarks).all()


def test_public_analyze_and_json_round_trip(astronaut):
    faces = pfx.analyze(astronaut)
    assert len(faces) == 1
    again = pfx.Face.from_dict(faces[0].to_dict())
    assert np.allclose(again.landmarks, faces[0].landmarks, atol=0.01)
    assert again.pose.yaw == pytest.approx(faces[0].pose.yaw, abs=0.01)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        "x.jpg",
    ],
)
def test_bad_arrays_rejected_with_clear_message(analyzer, bad):
    with pytest.raises(InputError, match=r"H x W x 3 uint8|numpy array"):
        analyzer.analyze(bad)


def test_bad_options_rejected():
    with pytest.raises(ConfigError, match="max_faces"):
        AnalyzeOptions(max_faces=0)
    with pytest.raises(ConfigError, match="detector model"):
        FaceAnalyzer(detector="tiny")  # type: ignore[arg-type]
