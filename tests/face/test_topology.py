"""Mesh index sets: consistent with MediaPipe's published connections; iBUG-68 view vs dlib."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from portraitfx.face import topology as T


def _edges(loop, closed=True):
    pairs = list(itertools.pairwise(loop + ((loop[0],) if closed else ())))
    return {frozenset(p) for p in pairs}


@pytest.fixture(scope="module")
def conn():
    from portraitfx.face import _mp

    return _mp.solutions().face_mesh_connections


@pytest.mark.parametrize(
    ("loop", "name"),
    [
        (T.FACE_OVAL, "FACEMESH_FACE_OVAL"),
        (T.LEFT_EYE, "FACEMESH_LEFT_EYE"),
        (T.RIGHT_EYE, "FACEMESH_RIGHT_EYE"),
        (T.LEFT_IRIS, "FACEMESH_LEFT_IRIS"),
        (T.RIGHT_IRIS, "FACEMESH_RIGHT_IRIS"),
    ],
)
def test_loops_match_mediapipe(conn, loop, name):
    assert _edges(loop) == {frozenset(e) for e in getattr(conn, name)}


def test_lips_and_brows_match_mediapipe(conn):
    lips = _edges(T.LIPS_OUTER) | _edges(T.LIPS_INNER)
    assert lips == {frozenset(e) for e in conn.FACEMESH_LIPS}
    for brow, name in (
        (T.LEFT_EYEBROW, "FACEMESH_LEFT_EYEBROW"),
        (T.RIGHT_EYEBROW, "FACEMESH_RIGHT_EYEBROW"),
    ):
        ref = {frozenset(e) for e in getattr(conn, name)}
        upper, lower = brow[:5], brow[5:]
        # MediaPipe draws the two brow edges as open paths; our polygon closes them.
        assert _edges(upper, closed=False) | _edges(lower, closed=False) <= ref | {
            frozenset((upper[-1], lower[0]))
        }
        assert len(_edges(upper, False) | _edges(lower, False)) == len(ref)


def test_index_ranges_and_sides(astronaut_face):
    lm = astronaut_face.landmarks
    assert max(max(p) for p in T.IBUG68) < T.N_MESH
    assert len(T.IBUG68) == 68
    # subject's right eye is on the image's left
    assert lm[T.RIGHT_EYE_OUTER, 0] < lm[T.LEFT_EYE_OUTER, 0]
    assert lm[T.RIGHT_IRIS_CENTER, 0] < lm[T.LEFT_IRIS_CENTER, 0]
    five = T.five_points(lm)
    assert five.shape == (5, 2) and five.dtype == np.float32
    assert five[0, 0] < five[1, 0] and five[3, 0] < five[4, 0]
    assert five[0, 1] < five[2, 1] < five[3, 1]  # eyes above nose above mouth


def test_ibug68_close_to_dlib_predictor(analyzer, astronaut, obama, biden):
    """The derived 68-point view agrees with dlib's 68-point model on real portraits."""
    import dlib

    from portraitfx.models.registry import resolve_model

    predictor = dlib.shape_predictor(str(resolve_model("dlib/shape_predictor_68")))
    errors = []
    for img in (astronaut, obama, biden):
        face = analyzer.analyze(img)[0]
        x0, y0, x1, y1 = (int(v) for v in face.bbox)
        shape = predictor(np.ascontiguousarray(img), dlib.rectangle(x0, y0, x1, y1))
        ref = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        ours = face.ibug68
        assert ours.shape == (68, 2)
        iod = np.linalg.norm(ref[36:42].mean(0) - ref[42:48].mean(0))
        err = np.linalg.norm(ours - ref, axis=1) / iod
        errors.append(err)
        assert err[17:].mean() < 0.06, "inner points (brows, nose, eyes, mouth) must agree closely"
    assert np.mean(errors) < 0.08
