"""The e4e-style encoder: it learns to invert, keeps latents near W, starts projection well, resumes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.errors import ConfigError, ModelError  # noqa: E402
from portraitfx.train.invert import project, psnr  # noqa: E402
from portraitfx.train.invert.encoder import (  # noqa: E402
    Encoder,
    EncoderConfig,
    EncoderOptions,
    EncoderTrainer,
    encode,
    layer_tap,
    load_encoder,
    save_encoder,
)
from portraitfx.train.stylegan import Generator, GeneratorConfig, save_generator  # noqa: E402

CFG = GeneratorConfig(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32)
OPTS = {"batch": 8, "channel_base": 512, "channel_max": 64, "progressive_every": 30}


@pytest.fixture(scope="module")
def generator(generator32):
    return generator32


@pytest.fixture(scope="module")
def trained(generator):
    trainer = EncoderTrainer(generator, EncoderOptions(**OPTS))
    trainer.train(300, snapshot_every=50)
    return trainer


def _held_out(generator, n=12):
    z = torch.randn(n, CFG.z_dim, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        ws = generator.mapping(z)
        return ws, generator.synthesis(ws, noise_mode="const")


def _mean_psnr(a, b):
    return float(np.mean([psnr(a[i : i + 1], b[i : i + 1]) for i in range(len(a))]))


def test_the_encoder_maps_each_synthesis_layer_to_a_tap_and_outputs_w_plus():
    assert [layer_tap(i) for i in range(12)] == [4, 4, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16]
    enc = Encoder(EncoderConfig.for_generator(CFG, channel_base=512, channel_max=32))
    ws, w, deltas = enc(torch.zeros(2, 3, 32, 32), with_deltas=True)
    assert ws.shape == (2, CFG.num_ws, 32) and w.shape == (2, 32)
    assert torch.equal(deltas[:, 0], torch.zeros(2, 32))  # layer 0 is the base latent itself
    enc.active.fill_(0)  # progressive training: no offsets yet -> one w for every layer (W space)
    ws = enc(torch.randn(2, 3, 32, 32))
    assert torch.allclose(ws, ws[:, :1].expand_as(ws))
    with pytest.raises(ConfigError):
        EncoderConfig(resolution=48)


def test_training_learns_to_invert_images_it_never_saw(generator, trained):
    ws_true, images = _held_out(generator)
    with torch.no_grad():
        ws = encode(trained.E, images)
        recon = generator.synthesis(ws, noise_mode="const")
        average = generator.synthesis(trained.E.w_avg.expand(len(images), CFG.num_ws, -1), noise_mode="const")
    got, start = _mean_psnr(recon, images), _mean_psnr(average, images)
    assert got > start + 4.0, (got, start)
    err = float((ws - ws_true).square().sum(2).mean())
    base = float((trained.E.w_avg - ws_true).square().sum(2).mean())
    assert err < 0.75 * base, (err, base)
    first, last = trained.history[0], trained.history[-1]
    assert last["pixel"] < 0.7 * first["pixel"]
    assert int(trained.E.active) == CFG.num_ws - 1  # every offset switched on by the end


def test_the_delta_regulariser_keeps_latents_near_w(generator):
    spreads = {}
    for weight in (0.0, 0.5):
        t = EncoderTrainer(generator, EncoderOptions(**{**OPTS, "progressive_every": 0}, delta_weight=weight))
        t.train(120)
        _, images = _held_out(generator)
        with torch.no_grad():
            _, w, d = t.E(images, with_deltas=True)
        spreads[weight] = float(d.norm(dim=2).mean() / w.norm(dim=1).mean())
    assert spreads[0.5] < 0.5 * spreads[0.0], spreads


def test_encoder_latents_start_a_projection_well(generator, trained):
    _, images = _held_out(generator, 2)
    target = images[1:2]
    init = encode(trained.E, target)
    alone = project(generator, target, steps=0, init=init)
    assert psnr(alone.image, target) == pytest.approx(
        psnr(generator.synthesis(init, noise_mode="const"), target), abs=1e-4
    )
    short = project(generator, target, steps=40, init=init)
    cold = project(generator, target, steps=40)
    assert psnr(short.image, target) > psnr(cold.image, target) + 1.0
    assert psnr(short.image, target) > psnr(alone.image, target)
    with pytest.raises(ConfigError, match="steps"):
        project(generator, target, steps=0)
    with pytest.raises(ConfigError, match="init latents"):
        project(generator, target, steps=5, init=init[:, :3])


def test_save_load_and_an_exact_resume(generator, tmp_path):
    a = EncoderTrainer(generator, EncoderOptions(**OPTS))
    a.train(20)
    a.save(tmp_path / "enc.safetensors")
    b = EncoderTrainer(generator, EncoderOptions(**OPTS), resume=tmp_path / "enc.safetensors")
    assert b.step_count == 20
    a.train(30)
    b.train(30)
    for (k, va), vb in zip(a.E.state_dict().items(), b.E.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    enc, gen_cfg = load_encoder(tmp_path / "enc.safetensors", generator)
    assert gen_cfg == CFG
    x = torch.randn(1, 3, 32, 32)
    a.save(tmp_path / "enc.safetensors")
    enc, _ = load_encoder(tmp_path / "enc.safetensors")
    assert torch.equal(encode(enc, x), encode(a.E, x))
    other = Generator(GeneratorConfig(resolution=32, z_dim=16, w_dim=16, channel_base=512, channel_max=32))
    with pytest.raises(ModelError, match="another shape"):
        load_encoder(tmp_path / "enc.safetensors", other)
    with pytest.raises(ModelError, match="not a portraitfx StyleGAN encoder"):
        load_encoder(save_generator(tmp_path / "g.safetensors", generator))
    (tmp_path / "enc.pt").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelError):
        load_encoder(tmp_path / "enc.pt")
    bare = save_encoder(tmp_path / "bare.safetensors", enc, CFG)
    assert load_encoder(bare)[0].cfg.num_ws == CFG.num_ws  # a bare encoder (no optimiser) loads too
    fresh = EncoderTrainer(generator, EncoderOptions(**OPTS), resume=bare)  # and fine-tunes from step 0
    assert fresh.step_count == 0 and torch.equal(encode(fresh.E, x), encode(enc, x))


def test_cli_train_encoder_invert_and_pairs_from_photos(generator, tmp_path, capsys):
    from portraitfx.cli.main import main
    from portraitfx.io.images import load_image, save_image
    from portraitfx.models.load import load_safetensors
    from portraitfx.train.stylegan.networks import to_uint8

    model = save_generator(tmp_path / "g.safetensors", generator)
    photos = tmp_path / "photos"
    photos.mkdir()
    _, images = _held_out(generator, 3)
    for i, img in enumerate(to_uint8(images)):
        save_image(photos / f"p{i}.png", img)
    enc = tmp_path / "enc.safetensors"
    base = ["stylegan", "train-encoder", str(model), "-o", str(enc), "--channel-base", "512",
            "--channel-max", "32", "--data", str(photos), "-q"]  # fmt: skip
    assert main([*base, "--steps", "20", "--preview", str(tmp_path / "enc.png")]) == 0
    out = capsys.readouterr().out
    assert (
        "step 20, held-out PSNR" in out and load_image(tmp_path / "enc.png").shape[1] == 2 + 7 * 34
    )  # 4 drawn + 3 photos
    assert main([*base, "--steps", "30"]) == 0
    assert (
        "resuming" in capsys.readouterr().out
        and EncoderTrainer(generator, EncoderOptions(channel_base=512, channel_max=32), resume=enc).step_count
        == 30
    )

    inv = ["stylegan", "invert", str(photos / "p0.png"), "-m", str(model), "-e", str(enc), "-o",
           str(tmp_path / "inv.png"), "--steps", "0", "-q"]  # fmt: skip
    assert main(inv) == 0
    assert "from the encoder, after 0 steps" in capsys.readouterr().out

    style = save_generator(tmp_path / "s.safetensors", generator)
    pairs = ["stylegan", "pairs", "--face", str(model), "--style", str(style), "-n", "1",
             "--photos", str(photos), "-e", str(enc), "-o", str(tmp_path / "pairs"), "-q"]  # fmt: skip
    assert main(pairs) == 0
    assert "wrote 4 pairs" in capsys.readouterr().out
    lat = load_safetensors(tmp_path / "pairs" / "latents" / "p2.safetensors")["ws"]
    assert lat.shape == (1, CFG.num_ws, CFG.w_dim)
    assert main(pairs) == 0  # again: nothing new, latents reused
    assert "wrote 0 pairs" in capsys.readouterr().out
    no_encoder = ["stylegan", "pairs", "--face", str(model), "--style", str(style), "--photos", str(photos),
                  "-o", str(tmp_path / "p2")]  # fmt: skip
    assert main(no_encoder) == 2
    assert "--photos and --encoder go together" in capsys.readouterr().err
