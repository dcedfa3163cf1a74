"""Head pose: exact on synthetic rotations, consistent on real images (rotation, mirror)."""

from __future__ import annotations

import numpy as np
import pytest

from portraitfx.face.pose import canonical_face, estimate_pose, rotation_matrix, umeyama


@pytest.mark.parametrize("pose", [(0, 0, 0), (25, -10, 5), (-45, 20, -30), (60, 0, 10), (0, -35, 0)])
def test_recovers_synthetic_pose(pose):
    pts = canonical_face() @ rotation_matrix(*pose).T * 73.0 + np.array([320, 240, 0])
    got = estimate_pose(pts).as_tuple()
    assert got == pytest.approx(pose, abs=0.5)


def test_sign_conventions():
    c = canonical_face()
    nose, eyes = 1, [468, 473]
    turned = c @ rotation_matrix(30, 0, 0).T
    assert turned[nose, 0] > turned[eyes, 0].mean(), "yaw > 0 turns the face toward image right"
    up = c @ rotation_matrix(0, 30, 0).T
    assert up[nose, 1] < c[nose, 1], "pitch > 0 looks up (nose moves up the image)"
    cw = c @ rotation_matrix(0, 0, 20).T
    assert cw[473, 1] > cw[468, 1], "roll > 0 is clockwise in the image"


def test_canonical_face_is_symmetric():
    c = canonical_face()
    assert c.shape == (478, 3)
    mirrored = c * np.array([-1, 1, 1])
    d = np.linalg.norm(c[:, None] - mirrored[None], axis=2).min(1)
    assert d.max() < 1e-3


def test_mirror_flips_yaw_and_roll(analyzer, obama3):
    base = analyzer.analyze(obama3)[0].pose
    flipped = analyzer.analyze(np.ascontiguousarray(obama3[:, ::-1]))[0].pose
    assert flipped.yaw == pytest.approx(-base.yaw, abs=3)
    assert flipped.roll == pytest.approx(-base.roll, abs=3)
    assert flipped.pitch == pytest.approx(base.pitch, abs=3)


def test_frontal_portraits_are_near_zero(analyzer, obama, astronaut):
    for img in (obama, astronaut):
        p = analyzer.analyze(img)[0].pose
        assert abs(p.yaw) < 15 and abs(p.pitch) < 15 and abs(p.roll) < 10


def test_umeyama_exact_and_rejects_bad_shape():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(20, 2))
    ang = 0.7
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = 2.5 * src @ rot.T + [3, -4]
    s, r, t = umeyama(src, dst)
    assert s == pytest.approx(2.5) and np.allclose(r, rot) and np.allclose(t, [3, -4])
    with pytest.raises(ValueError, match="478"):
        estimate_pose(np.zeros((68, 2)))


def _umeyama_svd(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama (1991) through the SVD, as a reference."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(src.shape[1])
    d[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / a.var(0).sum())
    return scale, rot, mu_d - scale * rot @ mu_s


def test_umeyama_plane_closed_form_matches_the_svd_solution():
    """The 2-D shortcut gives the SVD answer, mirrored and noisy point sets included."""
    rng = np.random.default_rng(2)
    for i in range(40):
        src = rng.normal(size=(30, 2)) * rng.uniform(0.1, 50)
        ang, scale = rng.uniform(-3, 3), rng.uniform(0.2, 4)
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        dst = scale * src @ rot.T + rng.normal(size=2) * 10 + rng.normal(size=src.shape) * rng.uniform(0, 2)
        if i % 4 == 0:
            dst[:, 1] *= -1  # a mirrored set: the best proper rotation still
        s, r, t = umeyama(src, dst)
        s_ref, r_ref, t_ref = _umeyama_svd(src, dst)
        assert s == pytest.approx(s_ref, rel=1e-9)
        assert np.allclose(r, r_ref, atol=1e-9) and np.allclose(t, t_ref, atol=1e-7)
        assert np.linalg.det(r) == pytest.approx(1.0)
