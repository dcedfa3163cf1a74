"""Aligned crops: template framing, exact inverse, paste-back round trip."""

from __future__ import annotations

import numpy as np
import pytest

from portraitfx.errors import ConfigError
from portraitfx.face.align import (
    TEMPLATES,
    align_face,
    alignment_matrix,
    invert_affine,
    paste_back,
    transform_points,
)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


@pytest.mark.parametrize("template", ["ffhq", "arcface"])
@pytest.mark.parametrize("size", [112, 256, 1024])
def test_five_points_land_on_template(astronaut, astronaut_face, template, size):
    crop = align_face(astronaut, astronaut_face, size=size, template=template)
    assert crop.image.shape == (size, size, 3) and crop.image.dtype == np.uint8
    got = crop.to_crop(astronaut_face.five_points)
    want = TEMPLATES[template] * size - 0.5
    # a least-squares fit of a real (smiling) face: eyes close, mouth and nose within a quarter IOD
    iod = np.linalg.norm(want[1] - want[0])
    err = np.linalg.norm(got - want, axis=1)
    assert err[:2].max() < 0.1 * iod and err.max() < 0.25 * iod


def test_points_round_trip_exactly(astronaut_face):
    m = alignment_matrix(astronaut_face.five_points, 512)
    pts = astronaut_face.landmarks
    back = transform_points(transform_points(pts, m), invert_affine(m))
    assert np.allclose(back, pts, atol=1e-3)
    assert np.allclose(invert_affine(invert_affine(m)), m)


def test_depth_scales_with_the_crop(astronaut_face):
    small = align_face(np.zeros((512, 512, 3), np.uint8), astronaut_face, size=128)
    big = align_face(np.zeros((512, 512, 3), np.uint8), astronaut_face, size=512)
    z_small = small.to_crop(astronaut_face.landmarks)[:, 2]
    z_big = big.to_crop(astronaut_face.landmarks)[:, 2]
    assert np.allclose(z_big, 4 * z_small, rtol=1e-4, atol=1e-3)


def test_paste_back_of_unchanged_crop_restores_frame(astronaut, astronaut_face):
    crop = align_face(astronaut, astronaut_face, size=512)
    out = paste_back(astronaut, crop.image, crop.matrix)
    x0, y0, x1, y1 = astronaut_face.bbox.astype(int)
    assert _psnr(out[y0:y1, x0:x1], astronaut[y0:y1, x0:x1]) > 35
    assert out.shape == astronaut.shape


def test_paste_back_changes_only_the_masked_region(astronaut, astronaut_face):
    crop = align_face(astronaut, astronaut_face, size=256)
    edited = np.full_like(crop.image, (0, 255, 0))
    mask = np.zeros((256, 256), np.float32)
    mask[96:160, 96:160] = 1
    out = paste_back(astronaut, edited, crop.matrix, mask=mask)
    changed = np.any(out != astronaut, axis=2)
    centre = crop.to_frame(np.array([[127.5, 127.5]]))[0].round().astype(int)
    assert tuple(out[centre[1], centre[0]]) == (0, 255, 0)
    _, xs = np.nonzero(changed)
    # the changed area is the warped 64 px square: about (64 / scale) px across
    scale = np.sqrt(abs(np.linalg.det(crop.matrix[:, :2])))
    assert xs.max() - xs.min() < 64 / scale * 1.5 + 4
    assert astronaut[0, 0].tolist() == out[0, 0].tolist()


def test_bad_arguments():
    pts = np.zeros((5, 2))
    with pytest.raises(ConfigError, match="template"):
        alignment_matrix(pts, 256, "celeba")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 8"):
        alignment_matrix(pts, 4)
    with pytest.raises(ConfigError, match=r"\(5, 2\)"):
        alignment_matrix(np.zeros((4, 2)), 256)
    with pytest.raises(ConfigError, match="square"):
        paste_back(np.zeros((64, 64, 3), np.uint8), np.zeros((32, 16, 3), np.uint8), np.eye(2, 3))
