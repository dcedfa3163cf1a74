"""The hair models (GLEAN-like and pix2pixHD): shapes, the mask contract, the StyleGAN prior,
real learning on face crops, exact resume, ONNX export, the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.cli.main import main  # noqa: E402
from portraitfx.errors import ConfigError, ModelError, UnsafeModelError  # noqa: E402
from portraitfx.io.images import save_image  # noqa: E402
from portraitfx.train.hairnet import (  # noqa: E402
    HairNetConfig,
    HairNetTrainer,
    HairTrainOptions,
    build_hairnet,
    export_hairnet,
    load_hair_pairs,
    load_hairnet,
    save_hairnet,
    template_edit,
)
from portraitfx.train.stylegan import save_generator  # noqa: E402

# the shape of the generator32 fixture, so it can be the GLEAN prior
SMALL = {"channel_base": 512, "channel_max": 32, "w_dim": 32, "width": 8, "downs": 2, "blocks": 2}


@pytest.mark.parametrize("arch", ["glean", "pix2pixhd"])
@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_the_mask_contract(arch, size):
    net = build_hairnet(HairNetConfig(arch=arch, size=size, **SMALL)).eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        out, mask = net(x)
    assert out.shape == x.shape and mask.shape == (2, 1, size, size)
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    # where the mask is 0 the output is the input exactly
    with torch.no_grad():
        net.heads.mask.bias.fill_(-1e4)
        out, mask = net(x)
    assert torch.equal(mask, torch.zeros_like(mask)) and torch.equal(out, x)


def test_bad_configs():
    with pytest.raises(ConfigError, match="power of two"):
        HairNetConfig(size=48)
    with pytest.raises(ConfigError, match="arch"):
        HairNetConfig(arch="unet")
    with pytest.raises(ConfigError, match="unknown hairnet options"):
        HairTrainOptions.from_dict({"archh": "glean"})


def test_stylegan_prior_is_loaded(generator32):
    net = build_hairnet(HairNetConfig(arch="glean", size=32, **SMALL))
    net.load_prior(generator32, freeze=True)
    mine, theirs = net.prior.state_dict(), generator32.synthesis.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert not any(p.requires_grad for p in net.prior.parameters())
    # fresh fusions are zero: the prior alone decides its own features at first
    assert all(float(f.weight.detach().abs().max()) == 0 for f in net.fuse.values())
    other = build_hairnet(HairNetConfig(arch="glean", size=32, channel_base=512, channel_max=16, w_dim=32))
    with pytest.raises(ConfigError, match="prior must be"):
        other.load_prior(generator32)


def _pairs(image: np.ndarray, n: int = 24, size: int = 32, seed: int = 0):
    """Real face crops (jittered, flipped) and their template bangs: a task to learn."""
    rng = np.random.default_rng(seed)
    crop = cv2.resize(image[20:420, 60:460], (size, size), interpolation=cv2.INTER_AREA)
    before, after, masks = [], [], []
    for i in range(n):
        x = np.clip(crop.astype(np.float32) * rng.uniform(0.75, 1.2) + rng.normal(0, 4, crop.shape), 0, 255)
        x = x.astype(np.uint8)
        if i % 2:
            x = np.ascontiguousarray(x[:, ::-1])
        y, m = template_edit(x, "bangs", amount=float(rng.uniform(0.4, 0.9)))
        before.append(x)
        after.append(y)
        masks.append(m)
    return np.stack(before), np.stack(after), np.stack(masks)


@pytest.fixture(scope="module")
def pairs(astronaut):
    return _pairs(astronaut)


@pytest.mark.parametrize("arch", ["glean", "pix2pixhd"])
def test_training_learns_the_edit(pairs, arch):
    opts = HairTrainOptions(arch=arch, size=32, steps=120, batch=4, val_fraction=0.25, **SMALL)
    trainer = HairNetTrainer(*pairs, opts)
    start = trainer.validate()
    trainer.train(log_every=60)
    end = trainer.history[-1]
    # held-out pairs: much closer to the target than the unedited input, above all in the edit region
    assert end["psnr"] > end["identity_psnr"] + 4, end
    assert end["psnr_edit"] > end["identity_psnr_edit"] + 6, end
    assert end["psnr_edit"] > start["psnr_edit"] + 6
    # it learned where to draw: the predicted mask covers the edit region and little else
    _, masks = trainer.predict(pairs[0][trainer.val_idx])
    truth = pairs[2][trainer.val_idx] > 0.5
    assert masks[truth].mean() > 3 * masks[~truth].mean() and masks[~truth].mean() < 0.15


def test_resume_is_exact(tmp_path, pairs):
    opts = HairTrainOptions(arch="glean", size=32, steps=6, batch=2, **SMALL)
    a = HairNetTrainer(*pairs, opts)
    for _ in range(6):
        a.step()
    b = HairNetTrainer(*pairs, opts)
    for _ in range(3):
        b.step()
    b.save(tmp_path / "ck.safetensors")
    c = HairNetTrainer(*pairs, opts, resume=tmp_path / "ck.safetensors")
    assert c.step_count == 3
    for _ in range(3):
        c.step()
    for (k, p), q in zip(a.net.state_dict().items(), c.net.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), k


@pytest.mark.parametrize("arch", ["glean", "pix2pixhd"])
def test_export_matches_torch_and_refuses_pickles(tmp_path, arch):
    net = build_hairnet(HairNetConfig(arch=arch, size=32, edit="bangs", **SMALL))
    ck = save_hairnet(tmp_path / "h.safetensors", net)
    assert isinstance(load_hairnet(ck), type(net))
    info = export_hairnet(ck, tmp_path / "h.onnx")
    assert info["max_abs_error"] < 1e-4 and info["edit"] == "bangs" and info["size"] == 32
    from portraitfx.effects.hair.model import HairModel

    model = HairModel(tmp_path / "h.onnx")
    crop = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    out, mask = model.run_crop(crop)
    with torch.no_grad():
        want, want_mask = net(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1)
    want_u8 = ((want[0].permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255)
    assert np.abs(out.astype(float) - want_u8).max() <= 1.0
    assert np.abs(mask - want_mask[0, 0].numpy()).max() < 1e-4
    import pickle

    (tmp_path / "bad.safetensors").write_bytes(pickle.dumps(net.state_dict()))
    with pytest.raises((UnsafeModelError, ModelError)):
        load_hairnet(tmp_path / "bad.safetensors")


def test_cli_train_resume_export_and_run(tmp_path, pairs, generator32, capsys, analyzer, obama):
    before, after, masks = pairs
    data = tmp_path / "pairs"
    for sub in ("face", "style", "mask"):
        (data / sub).mkdir(parents=True)
    lines = []
    for i in range(len(before)):
        name = f"{i:06d}.png"
        save_image(data / "face" / name, before[i])
        save_image(data / "style" / name, after[i])
        save_image(data / "mask" / name, (masks[i] * 255).astype(np.uint8))
        lines.append(json.dumps({"index": i, "edit": "bangs"}))
    (data / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    got = load_hair_pairs(data, 32, "bangs")
    assert got[0].shape == before.shape and np.abs(got[2] - masks).max() < 1 / 255 + 1e-6
    with pytest.raises(Exception, match="0 complete pairs"):
        load_hair_pairs(data, 32, "hairline")
    save_generator(tmp_path / "prior.safetensors", generator32)
    cfg = tmp_path / "bangs.yaml"
    opts = {"arch": "glean", "size": 32, "edit": "bangs", "prior": "prior.safetensors", "batch": 4, **SMALL}
    cfg.write_text(
        json.dumps({"data": "pairs", "output": "run", "steps": 20, "log_every": 10, "options": opts})
    )
    assert main(["train", "hairnet", str(cfg), "-q"]) == 0, capsys.readouterr().err
    run = tmp_path / "run"
    assert (run / "hairnet.safetensors").is_file() and (run / "preview.png").is_file()
    assert len((run / "log.jsonl").read_text().splitlines()) == 2
    # more steps: resumes from the checkpoint
    cfg.write_text(
        json.dumps({"data": "pairs", "output": "run", "steps": 30, "log_every": 10, "options": opts})
    )
    assert main(["train", "hairnet", str(cfg), "--export", str(tmp_path / "bangs.onnx")]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "exported" in out
    assert json.loads((run / "log.jsonl").read_text().splitlines()[-1])["step"] == 30
    assert (
        main(["export", "hairnet", str(run / "hairnet.safetensors"), "-o", str(tmp_path / "b2.onnx"), "-q"])
        == 0
    )
    # the exported model runs on a full-resolution photo through the hair command
    src = save_image(tmp_path / "obama.png", obama)
    code = main(
        ["hair", "bangs", str(src), "-m", str(tmp_path / "bangs.onnx"), "-o", str(tmp_path / "o.png"), "-q"]
    )
    assert code == 0, capsys.readouterr().err
    # a bad config is one line, non-zero
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: pairs\noutput: run2\noptions: {arch: nope}\n")
    assert main(["train", "hairnet", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
