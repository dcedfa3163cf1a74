"""U-GAT-IT: CAM and AdaLIN, the losses' known answers, the region and mask variants, a short run, resume."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.errors import ConfigError  # noqa: E402
from portraitfx.train.ugatit.networks import CAM, LIN, AdaLIN, Discriminator, Generator, UGATITConfig  # noqa: E402
from portraitfx.train.ugatit.train import (  # noqa: E402
    UGATITOptions,
    UGATITTrainer,
    cam_loss,
    load_domain,
    load_generator,
    lsgan_fake,
    lsgan_real,
    save_generator,
)

TINY = {"size": 64, "ngf": 8, "ndf": 8, "n_res": 2}
SMALL = {"size": 32, "ngf": 8, "ndf": 8, "n_res": 1}


def test_cam_attention_shapes_and_gradients():
    cam = CAM(6)
    x = torch.randn(2, 6, 5, 7, requires_grad=True)
    y, logits, heat = cam(x)
    assert y.shape == (2, 6, 5, 7) and logits.shape == (2, 2) and heat.shape == (2, 1, 5, 7)
    # the logits are the pooled features through the classifier's weights
    w_gap, w_gmp = cam.gap_fc.weight[0], cam.gmp_fc.weight[0]
    assert torch.allclose(logits[:, 0], x.mean((2, 3)) @ w_gap, atol=1e-6)
    assert torch.allclose(logits[:, 1], x.amax((2, 3)) @ w_gmp, atol=1e-6)
    (logits.sum() + heat.sum()).backward()
    assert x.grad is not None and cam.gap_fc.weight.grad is not None and float(x.grad.abs().sum()) > 0


def test_adalin_mixes_instance_and_layer_norm():
    x = torch.randn(2, 4, 6, 6) * 3 + 1
    gamma, beta = torch.full((2, 4), 2.0), torch.full((2, 4), 0.5)
    norm = AdaLIN(4, rho=1.0)
    inorm = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(
        x.var((2, 3), keepdim=True, unbiased=False) + 1e-5
    )
    assert torch.allclose(norm(x, gamma, beta), inorm * 2 + 0.5, atol=1e-5)
    with torch.no_grad():
        norm.rho.fill_(0.0)
    lnorm = (x - x.mean((1, 2, 3), keepdim=True)) / torch.sqrt(
        x.var((1, 2, 3), keepdim=True, unbiased=False) + 1e-5
    )
    assert torch.allclose(norm(x, gamma, beta), lnorm * 2 + 0.5, atol=1e-5)
    with torch.no_grad():
        norm.rho.fill_(1.7)  # clipped to [0, 1]
    assert torch.allclose(norm(x, gamma, beta), inorm * 2 + 0.5, atol=1e-5)
    lin = LIN(4)
    out = lin(x)
    out.sum().backward()
    assert lin.rho.grad is not None and torch.allclose(out, lnorm, atol=1e-5)  # starts as layer norm


def test_the_losses_known_answers():
    x = torch.tensor([0.0, 1.0, 2.0])
    assert float(lsgan_real(x)) == pytest.approx((1 + 0 + 1) / 3)
    assert float(lsgan_fake(x)) == pytest.approx((0 + 1 + 4) / 3)
    logits = torch.tensor([[0.0, 0.0]])
    assert float(cam_loss(logits, True)) == pytest.approx(np.log(2))
    assert (
        float(cam_loss(torch.tensor([[20.0]]), True)) < 1e-6 < float(cam_loss(torch.tensor([[20.0]]), False))
    )


def test_generator_and_discriminator_shapes_and_the_mask_gate():
    cfg = UGATITConfig(**TINY, mask=True)
    g = Generator(cfg)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    out = g(x)
    assert out["image"].shape == x.shape and out["mask"].shape == (2, 1, 64, 64)
    assert out["cam_logits"].shape == (2, 2) and out["heatmap"].shape == (2, 1, 16, 16)
    given = torch.zeros(2, 1, 64, 64)
    given[..., 16:48, 16:48] = 1.0
    gated = g(x, given)["image"]
    outside = given.expand_as(x) == 0
    assert torch.equal(gated[outside], x[outside])  # pixels outside the mask are the input's, exactly
    assert not torch.allclose(gated[~outside], x[~outside])
    d = Discriminator(8, cfg.global_layers)
    patch, logits, heat = d(x)
    assert patch.dim() == 4 and logits.shape == (2, 2) and heat.shape[1] == 1
    with pytest.raises(ConfigError):
        UGATITConfig(size=100)


def _domains(n: int = 6, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Domain A: noisy photos-like gradients; domain B: the same flattened into two tones (a 'style')."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1.0)
    a, b = [], []
    for i in range(n):
        base = np.stack([xx * (0.5 + 0.1 * i), yy, 1 - xx * yy], -1) * 255
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        a.append(img)
        b.append(np.where(img.mean(2, keepdims=True) > 110, 230, 40).astype(np.uint8).repeat(3, 2))
    return np.stack(a), np.stack(b)


def test_a_short_run_learns_and_resumes_exactly(tmp_path):
    a, b = _domains()
    opts = UGATITOptions(**SMALL, edge_weight=1.0)
    t = UGATITTrainer(a, b, opts)
    first = t.step()
    for _ in range(24):
        last = t.step()
    assert last["cycle"] < first["cycle"] and last["identity"] < first["identity"]
    # resume: 3 + 3 steps equal 6 steps
    x = UGATITTrainer(a, b, opts)
    x.train(6)
    y = UGATITTrainer(a, b, opts)
    y.train(3, tmp_path / "run", log_every=3)
    z = UGATITTrainer(a, b, opts, resume=tmp_path / "run" / "checkpoint.safetensors")
    assert z.step_count == 3
    z.train(6)
    for (k, va), vz in zip(x.G_AB.state_dict().items(), z.G_AB.state_dict().values(), strict=True):
        assert torch.equal(va, vz), k
    g = load_generator(tmp_path / "run" / "generator.safetensors")
    assert g.cfg == opts.config()
    assert save_generator(tmp_path / "g.safetensors", g).is_file()


def test_the_mask_variant_needs_masks_and_keeps_the_outside(tmp_path):
    a, b = _domains(4)
    masks = np.zeros((4, 32, 32), np.float32)
    masks[:, 10:22, 10:22] = 1.0
    with pytest.raises(ConfigError, match="mask variant needs face masks"):
        UGATITTrainer(a, b, UGATITOptions(**SMALL, variant="mask"))
    t = UGATITTrainer(a, b, UGATITOptions(**SMALL, variant="mask"), masks_a=masks, masks_b=masks)
    logs = t.step()
    assert "mask" in logs
    x = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1
    m = torch.from_numpy(masks)[:, None]
    with torch.no_grad():
        out = t.G_AB(x, m)["image"]
    outside = m.expand_as(x) == 0
    assert torch.equal(out[outside], x[outside])


def test_region_variant_translates_only_the_face_region(tmp_path, astronaut, astronaut_face):
    import portraitfx as pfx

    g = Generator(UGATITConfig(**TINY))
    with torch.no_grad():  # an untrained generator: it changes everything it is given
        g.to_rgb[1].bias.fill_(0.5)
    path = save_generator(tmp_path / "g.safetensors", g)
    effect = pfx.create_effect("ugatit", model=path)
    out = effect.apply(astronaut, [astronaut_face])
    changed = np.abs(out.astype(int) - astronaut).max(axis=2) > 0
    x0, y0, x1, y1 = astronaut_face.bbox.astype(int)
    assert changed[y0:y1, x0:x1].mean() > 0.3  # the face
    import cv2

    from portraitfx.face.regions import region_mask

    region = region_mask(astronaut.shape, astronaut_face.landmarks[:, :2], "face_forehead", forehead=0.3) > 0
    margin = int(0.2 * (x1 - x0))  # the feathering of the mask's edge (a few crop pixels, scaled up)
    near = cv2.dilate(region.astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) > 0
    assert changed[region].mean() > 0.9 and not changed[~near].any()  # the face region only
    # and region data: each image's face, aligned, with its mask
    folder = tmp_path / "faces"
    folder.mkdir()
    pfx.save_image(folder / "a.png", astronaut)
    pfx.save_image(folder / "b.png", astronaut[:, ::-1])
    images, masks = load_domain(folder, 64, region=True)
    assert images.shape == (2, 64, 64, 3) and masks.shape == (2, 64, 64)
    assert 0.2 < float(masks.mean()) < 0.7
