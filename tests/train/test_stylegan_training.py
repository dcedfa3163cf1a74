"""StyleGAN2-ADA training: regulariser gradients, ADA, a short real run, exact resume, transfer."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.train.stylegan import Generator, save_generator  # noqa: E402
from portraitfx.train.stylegan.augment import AdaptiveAugment, augment, geometric_matrix, warp  # noqa: E402
from portraitfx.train.stylegan.train import Trainer, TrainOptions, path_length, r1_penalty  # noqa: E402

SMALL = {
    "resolution": 16,
    "z_dim": 32,
    "mapping_layers": 2,
    "channel_base": 256,
    "channel_max": 32,
    "batch": 8,
}


def _blobs(n: int = 64, r: int = 16, seed: int = 0) -> torch.Tensor:
    """Orange blobs on a dark blue ground, at random places: a tiny image distribution."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, r), torch.linspace(-1, 1, r), indexing="ij")
    out = []
    for _ in range(n):
        cx, cy = (torch.rand(2, generator=gen) * 0.8 - 0.4).tolist()
        blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.15)
        out.append(torch.stack([blob * 1.6 - 0.6, blob * 0.6 - 0.7, -0.4 - 0.4 * blob]))
    return torch.stack(out).clamp(-1, 1)


def test_r1_penalty_matches_the_closed_form_and_its_gradient_checks():
    a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)

    def disc(img):
        return (a * img.square()).sum(dim=(1, 2, 3))

    got = r1_penalty(disc, x)
    want = (4 * a.detach() ** 2 * x.square()).sum(dim=(1, 2, 3))
    assert torch.allclose(got, want)
    assert torch.autograd.gradcheck(
        lambda a_: r1_penalty(lambda im: (a_ * im.square()).sum((1, 2, 3)), x), (a,)
    )


def test_path_length_matches_the_closed_form():
    torch.manual_seed(0)
    a = torch.randn(5, 2 * 4 * 4, dtype=torch.float64)
    ws = torch.randn(3, 4, 5, dtype=torch.float64)
    noise = torch.randn(3, 2, 4, 4, dtype=torch.float64)

    def synthesis(w):  # linear: every w copy contributes A^T w
        return (w.sum(1) @ a).reshape(-1, 2, 4, 4)

    got = path_length(synthesis, ws, noise)
    y = noise.reshape(3, -1) / 4.0  # / sqrt(H W)
    want = (y @ a.T).norm(dim=1)  # the same gradient for each of the 4 copies
    assert torch.allclose(got, want)


def test_augmentations_identity_inverse_and_adaptation():
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    assert augment(x, 0.0) is x
    assert torch.equal(geometric_matrix(4, 0.0, x.device), torch.eye(3).repeat(4, 1, 1))
    # a geometric augmentation and its inverse give the picture back (inside, on a smooth picture)
    smooth = torch.nn.functional.interpolate(
        torch.rand(4, 3, 8, 8), size=32, mode="bilinear", align_corners=False
    )
    m = geometric_matrix(4, 1.0, x.device, torch.Generator().manual_seed(3))
    back = warp(warp(smooth, m), torch.linalg.inv(m))
    centre = (slice(None), slice(None), slice(12, 20), slice(12, 20))
    assert (back[centre] - smooth[centre]).abs().mean() < 0.03
    # an x-flip twice is exact
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0])).repeat(4, 1, 1)
    assert torch.allclose(warp(warp(x, flip), flip), x, atol=1e-5)
    # p rises while the discriminator is sure of the real images, falls when it is not
    ada = AdaptiveAugment(target=0.6, speed_kimg=0.1)
    for _ in range(5):
        ada.observe(torch.ones(8))
        ada.update(32)
    assert ada.p > 0.9 and ada.rt == 1.0
    for _ in range(20):
        ada.observe(-torch.ones(8))
        ada.update(32)
    assert ada.p == 0.0


def _colour_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet-style distance between per-image mean colours and 4x4 layouts."""

    def feats(x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)

    fa, fb = feats(a).double(), feats(b).double()
    mean = float((fa.mean(0) - fb.mean(0)).square().sum())
    return mean + float((fa.var(0) - fb.var(0)).abs().sum())


def test_a_short_run_moves_the_samples_toward_the_data():
    data = _blobs()
    trainer = Trainer(data, TrainOptions(**SMALL, lr=0.002))
    z = torch.randn(64, 32, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        before = _colour_distance(trainer.G_ema(z, noise_mode="const"), data)
    for _ in range(200):
        logs = trainer.step()
    with torch.no_grad():
        after = _colour_distance(trainer.G_ema(z, noise_mode="const"), data)
    assert after < 0.5 * before, (before, after)
    assert np.isfinite(logs["loss_g"]) and np.isfinite(logs["loss_d"])
    assert trainer.state.images == 200 * 8


def test_resume_continues_exactly(tmp_path):
    data = _blobs(16)
    options = TrainOptions(**SMALL, r1_every=2, pl_every=2, ada_interval=1, ada_kimg=0.05)
    a = Trainer(data, options)
    for _ in range(5):
        a.step()
    path = a.save(tmp_path / "checkpoint.safetensors")
    for _ in range(4):
        a.step()
    b = Trainer(data, options, resume=path)
    assert b.state.step == 5
    for _ in range(4):
        b.step()
    for (name, pa), pb in zip(a.G.state_dict().items(), b.G.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    for pa, pb in zip(a.D.state_dict().values(), b.D.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert a.ada.p == b.ada.p > 0


def test_transfer_from_a_generator_keeps_frozen_layers(tmp_path):
    data = _blobs(16)
    options = TrainOptions(**SMALL, freeze_g=2, freeze_d=1)
    torch.manual_seed(5)
    base = Generator(options.generator_config())
    path = save_generator(tmp_path / "base.safetensors", base)
    trainer = Trainer(data, options, resume=path)
    d_before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    for _ in range(3):
        trainer.step()
    for name, value in trainer.G.state_dict().items():
        res = trainer.G.resolution_of(name)
        if res in (4, 8) and "noise_const" not in name:
            assert torch.equal(value, base.state_dict()[name]), f"{name} is frozen"
    assert not torch.equal(trainer.G.state_dict()["synthesis.blocks.b16.conv1.conv.weight"],
                           base.state_dict()["synthesis.blocks.b16.conv1.conv.weight"])  # fmt: skip
    for name, value in trainer.D.state_dict().items():
        if trainer.D.resolution_of(name) == 16:
            assert torch.equal(value, d_before[name]), f"{name} is frozen (FreezeD)"
    assert not torch.equal(trainer.D.state_dict()["out.weight"], d_before["out.weight"])


def test_cli_train_writes_a_run_and_resumes_it(tmp_path, capsys):
    from portraitfx.cli.main import main
    from portraitfx.io.images import load_image, save_image

    data = tmp_path / "data"
    data.mkdir()
    for i, img in enumerate(_blobs(6, 16)):
        save_image(data / f"{i}.png", ((img.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8))
    run = tmp_path / "run"
    args = ["stylegan", "train", str(data), "-o", str(run), "-r", "16", "--channel-base", "256", "--channel-max",
            "32", "--z-dim", "32", "--mapping-layers", "2", "--batch", "4", "--snapshot-kimg", "0.016", "-q"]  # fmt: skip
    assert main([*args, "--kimg", "0.032"]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [round(line["kimg"], 3) for line in log] == [0.016, 0.032]
    assert (run / "generator.safetensors").is_file() and load_image(next(run.glob("samples-*.png"))).ndim == 3
    capsys.readouterr()
    assert main([*args, "--kimg", "0.048"]) == 0
    assert "resuming" in capsys.readouterr().out
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert round(log[-1]["kimg"], 3) == 0.048 and len(log) == 3
    assert (
        main(
            [
                "stylegan",
                "sample",
                str(run / "generator.safetensors"),
                "-n",
                "4",
                "-o",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )


def test_prepared_data_is_read_in_place_and_trains_like_the_folder(tmp_path, capsys):
    from portraitfx.cli.main import main
    from portraitfx.errors import InputError
    from portraitfx.io.images import save_image
    from portraitfx.train.stylegan.train import open_training_data

    data = tmp_path / "data"
    data.mkdir()
    for i, img in enumerate(_blobs(6, 16)):
        save_image(data / f"{i}.png", ((img.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8))
    npy = tmp_path / "data16.npy"
    assert main(["stylegan", "prepare-data", str(data), "-r", "16", "-o", str(npy), "-q"]) == 0
    assert "6 images at 16 px" in capsys.readouterr().out
    mapped = open_training_data(npy, 16)
    assert isinstance(mapped, np.memmap) and mapped.shape == (6, 16, 16, 3)
    loaded = open_training_data(data, 16)
    assert np.array_equal(np.asarray(mapped), loaded)

    # uint8 (memory-mapped) and float in-memory data give the same run
    options = TrainOptions(**{**SMALL, "batch": 4})
    floats = torch.from_numpy(loaded.astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2).contiguous()
    a, b = Trainer(mapped, options, device="cpu"), Trainer(floats, options, device="cpu")
    for _ in range(2):
        a.step(), b.step()
    for (k, va), vb in zip(a.G.state_dict().items(), b.G.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k

    with pytest.raises(InputError, match="needs N x 32 x 32 x 3 uint8"):
        open_training_data(npy, 32)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="cannot read prepared data"):
        open_training_data(tmp_path / "objects.npy", 16)  # pickled object arrays are refused
