"""Fréchet distances (identity feature space on real aligned faces, ONNX features) and clarity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from portraitfx.face.align import align_face
from portraitfx.face.identity import FaceEmbedder, identity_distance
from portraitfx.metrics import IdentityFeatures, OnnxFeatures, clarity, feature_stats, fid, frechet_distance


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    v1, v2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    want = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, rel=1e-9)
    f = rng.normal(size=(50, 3))
    assert frechet_distance(*feature_stats(f), *feature_stats(f)) == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(scope="module")
def crops(analyzer, obama, data_dir):
    from portraitfx.io.images import load_image

    out = {}
    for name in ("obama", "obama2", "obama3", "biden", "astronaut"):
        img = obama if name == "obama" else load_image(data_dir / f"{name}.jpg")
        face = analyzer.analyze(img)[0]
        out[name] = (img, face, align_face(img, face, 128).image)
    return out


def test_identity_features_of_aligned_crops_match_the_embedder(crops):
    feats = IdentityFeatures()
    names = list(crops)
    got = feats(np.stack([crops[n][2] for n in names]))
    with FaceEmbedder() as embed:
        for name, vec in zip(names, got, strict=True):
            img, face, _ = crops[name]
            assert identity_distance(vec, embed(img, face)) < 0.25, name
    d = {n: v for n, v in zip(names, got, strict=True)}
    assert identity_distance(d["obama"], d["obama2"]) < 0.6 < identity_distance(d["obama"], d["biden"])


def _jitter(img: np.ndarray, k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    m = cv2.getRotationMatrix2D((63.5, 63.5), rng.uniform(-3, 3), rng.uniform(0.97, 1.03))
    m[:, 2] += rng.uniform(-2, 2, 2)
    out = cv2.warpAffine(img, m, (128, 128), borderMode=cv2.BORDER_REFLECT_101)
    return out[:, ::-1] if k % 2 else out


def test_identity_fid_tells_faces_from_broken_faces(crops):
    faces = [c[2] for c in crops.values()]
    real = np.stack([_jitter(f, k) for f in faces for k in range(6)])
    again = np.stack([_jitter(f, k + 100) for f in faces for k in range(6)])
    scrambled = np.stack([np.roll(f, 40, axis=0) for f in again])  # faces cut apart and stacked wrong
    feats = IdentityFeatures()
    same, broken = fid(real, again, feats), fid(real, scrambled, feats)
    assert same < 0.3 * broken, (same, broken)


def test_onnx_features(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "gap",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 1, 1])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "gap.onnx")
    feats = OnnxFeatures(tmp_path / "gap.onnx", size=32)
    imgs = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    want = (imgs.astype(np.float32) / 255.0 - 0.5).mean(axis=(1, 2)) / 0.5
    assert np.allclose(feats(imgs), want, atol=1e-5)


def test_clarity_falls_with_blur(astronaut):
    sharp = clarity(astronaut)
    soft = clarity(cv2.GaussianBlur(astronaut, (0, 0), 2.0))
    assert soft < 0.5 * sharp
    assert clarity(np.full((64, 64, 3), 128, np.uint8)) == 0.0


def test_cli_fid(crops, tmp_path):
    torch = pytest.importorskip("torch")
    from portraitfx.cli.main import main
    from portraitfx.io.images import save_image
    from portraitfx.train.stylegan import Generator, GeneratorConfig, save_generator

    data = tmp_path / "faces"
    data.mkdir()
    for name, (_, _, crop) in crops.items():
        save_image(data / f"{name}.png", cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA))
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        resolution=32, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16
    )
    model = save_generator(tmp_path / "g.safetensors", Generator(cfg))
    assert main(["stylegan", "fid", "-m", str(model), "--data", str(data), "-n", "8"]) == 0
