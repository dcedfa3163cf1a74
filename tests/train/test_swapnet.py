"""The learned swapper: losses with known answers, the morphable mesh model, one step, export into the engine."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from portraitfx.errors import ConfigError  # noqa: E402
from portraitfx.train.swapnet import losses as L  # noqa: E402
from portraitfx.train.swapnet.morphable import build_basis, procrustes  # noqa: E402
from portraitfx.train.swapnet.networks import SwapNet, SwapNetConfig, count, warp  # noqa: E402

TINY = SwapNetConfig(size=64, width=8, max_channels=64)


def test_losses_known_answers():
    a = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    assert float(L.identity_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(L.identity_loss(a, -a)) == pytest.approx(2.0)
    x, y = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    assert float(L.reconstruction_loss(x, y, torch.tensor([True, False]))) == pytest.approx(0.5)
    assert float(L.reconstruction_loss(x, y, torch.tensor([True, True]))) == pytest.approx(1.0)
    assert float(L.reconstruction_loss(x, y, torch.tensor([False, False]))) == 0.0
    assert float(L.landmark_loss(torch.zeros(1, 5, 2), torch.full((1, 5, 2), 2.0))) == pytest.approx(2.0)
    # a constant flow of (+3, -1) px reads the target 3 px right, 1 px up: exactly right when p = q + (3, -1)
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 0], flow[:, 1] = 3.0, -1.0
    q = torch.tensor([[[10.0, 12.0], [20.0, 8.0]]])
    assert float(L.flow_landmark_loss(flow, q, q + torch.tensor([3.0, -1.0]))) == pytest.approx(0.0, abs=1e-5)
    assert float(L.flow_landmark_loss(flow, q, q)) == pytest.approx(2.0, abs=1e-5)  # (3 + 1) / 2
    assert float(L.tv_loss(flow)) == 0.0
    ramp = torch.arange(4.0).repeat(1, 2, 4, 1)
    assert float(L.tv_loss(ramp)) == pytest.approx(1.0)
    feats = [torch.ones(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    assert float(L.attribute_loss(feats, feats)) == 0.0
    assert float(L.attribute_loss(feats, [f + 2 for f in feats])) == pytest.approx(2.0)
    g = torch.randn(2, 8, 6, 6)
    assert float(L.contextual_loss(g, g)) < 0.05 < float(L.contextual_loss(g, torch.randn(2, 8, 6, 6)))
    assert float(L.hinge_d([torch.full((2,), 2.0)], [torch.full((2,), -2.0)])) == 0.0
    assert float(L.hinge_d([torch.zeros(2)], [torch.zeros(2)])) == pytest.approx(2.0)
    assert float(L.hinge_g([torch.full((2,), 3.0)])) == pytest.approx(-3.0)


def test_warp_moves_pixels_by_the_flow():
    x = torch.zeros(1, 1, 16, 16)
    x[..., 8, 10] = 1.0
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0] = 2.0  # read two pixels to the right
    assert float(warp(x, flow)[0, 0, 8, 8]) == pytest.approx(1.0)


def test_the_morphable_model_separates_shape_from_expression():
    rng = np.random.default_rng(0)
    mean = rng.normal(0, 1, (478, 3))
    shape_dirs = rng.normal(0, 1, (3, 478 * 3))
    expr_dirs = rng.normal(0, 1, (2, 478 * 3))
    meshes, ids, truth = [], [], {}
    for person in range(6):
        a = rng.normal(0, 0.6, 3)
        truth[person] = a
        for _ in range(10):
            b = rng.normal(0, 0.3, 2)
            m = mean + (a @ shape_dirs + b @ expr_dirs).reshape(-1, 3) * 0.1
            angle = rng.uniform(-0.3, 0.3)
            r = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
            meshes.append(1.7 * m @ r.T + rng.normal(0, 5, 3))  # posed in some frame
            ids.append(f"p{person}")
    basis = build_basis(np.stack(meshes), ids, k_shape=3, k_expression=2)
    assert basis.shape.shape == (3, 478 * 3) and basis.expression.shape == (2, 478 * 3)
    assert np.allclose(basis.shape @ basis.shape.T, np.eye(3), atol=1e-6)
    fits = [basis.fit(m) for m in meshes]
    for m, f in zip(meshes, fits, strict=True):
        assert np.abs(basis.mesh(f) - m).max() < 1e-3 * np.abs(m).max()  # exact up to the ridge
    # two meshes of one person share (almost) their shape coefficients; another person's differ
    same = np.mean([np.linalg.norm(fits[0].alpha - fits[i].alpha) for i in range(1, 10)])
    other = np.mean([np.linalg.norm(fits[0].alpha - fits[i].alpha) for i in range(10, 60)])
    assert same < 0.35 * other
    # source shape + target expression, in the target's pose
    combined = basis.combine(fits[40], fits[1])
    s, r, _ = procrustes(combined, meshes[1])
    assert abs(s - 1) < 0.05 and np.allclose(r, np.eye(3), atol=0.05)
    with pytest.raises(ConfigError):
        build_basis(np.stack(meshes[:3]), ["a", "a", "a"])


def test_one_optimisation_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    net = SwapNet(TINY)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    target = torch.rand(2, 3, 64, 64)
    identity = F.normalize(torch.randn(2, 128), dim=1)
    flow_target = torch.zeros(2, 2, 2)
    wanted = torch.tensor([[[20.0, 30.0], [40.0, 30.0]]]).repeat(2, 1, 1)

    def total() -> torch.Tensor:
        out, mask = net(target, identity)
        flow = net.flow_pixels()
        return (
            L.reconstruction_loss(out, target, torch.tensor([True, True]))
            + 0.1 * L.flow_landmark_loss(flow, wanted, wanted + flow_target + 1.5)
            + 0.01 * L.tv_loss(flow)
            + 0.1 * (mask - 1).abs().mean()
        )

    before = total()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = total()
    assert float(after) < float(before.detach())


def test_sizes_and_the_mobile_width():
    params, gflops = count(SwapNetConfig(size=256))
    mobile = count(SwapNetConfig.mobile(256))
    assert mobile[1] <= 2.0 < gflops and mobile[0] < params
    with torch.no_grad():
        out, mask = SwapNet(TINY)(torch.rand(1, 3, 64, 64), F.normalize(torch.randn(1, 128), dim=1))
    assert out.shape == (1, 3, 64, 64) and mask.shape == (1, 1, 64, 64)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    with pytest.raises(ConfigError):
        SwapNetConfig(size=200)


def test_export_matches_pytorch_and_runs_in_the_swap_engine(tmp_path, obama, biden):
    pytest.importorskip("onnx")
    import portraitfx as pfx

    obama_face, biden_face = pfx.analyze(obama)[0], pfx.analyze(biden)[0]
    from portraitfx.effects.swap.neural import NeuralSwapper, swap_face_neural
    from portraitfx.face.identity import FaceEmbedder
    from portraitfx.train.swapnet.export import export_swapnet

    torch.manual_seed(0)
    net = SwapNet(SwapNetConfig(size=64, width=8, max_channels=64))
    report = export_swapnet(net, tmp_path / "swap.onnx")
    assert report["max_abs_diff"] < 1e-3
    half = export_swapnet(net, tmp_path / "swap16.onnx", precision="fp16")
    assert half["bytes"] < 0.7 * report["bytes"]
    swapper = NeuralSwapper(str(tmp_path / "swap.onnx"))
    source = FaceEmbedder()(biden, biden_face)
    out = swap_face_neural(obama, obama_face, swapper, source)
    assert out.shape == obama.shape and np.abs(out.astype(int) - obama).mean() > 0.5
