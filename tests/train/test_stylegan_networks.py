"""StyleGAN2 networks, checkpoints and fusion: reference computations, exactness, safety."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.errors import ConfigError, ModelError, UnsafeModelError  # noqa: E402
from portraitfx.train.stylegan import (  # noqa: E402
    Discriminator,
    Generator,
    GeneratorConfig,
    fuse_generators,
    load_generator,
    parse_schedule,
    save_generator,
)
from portraitfx.train.stylegan.networks import ModulatedConv2d, downsample2d, upsample2d  # noqa: E402

TINY = GeneratorConfig(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32)


def _generator(seed: int, cfg: GeneratorConfig = TINY) -> Generator:
    torch.manual_seed(seed)
    g = Generator(cfg)
    with torch.no_grad():  # noise strengths start at 0: give them values so noise shows
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    return g.eval()


def test_modulated_conv_matches_a_per_sample_reference():
    """Grouped implementation vs. a naive one: modulate each sample's weights by its
    style, demodulate by the L2 norm over (in, kh, kw), convolve that sample alone."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, 3, w_dim=6).double()
    x = torch.randn(3, 5, 9, 9, dtype=torch.float64)
    w = torch.randn(3, 6, dtype=torch.float64)
    got = conv(x, w)
    styles = w @ (conv.affine.weight * conv.affine.scale).T + conv.affine.bias
    for i in range(3):
        k = conv.weight * conv.scale * styles[i][None, :, None, None]
        norm = torch.sqrt((k**2).sum(dim=(1, 2, 3)) + 1e-8)
        k = k / norm[:, None, None, None]
        want = torch.nn.functional.conv2d(x[i : i + 1], k, padding=1)
        assert torch.allclose(got[i : i + 1], want, atol=1e-10)
        # demodulated: unit-variance input gives ~unit-variance output per channel
    big = torch.randn(64, 5, 16, 16, dtype=torch.float64)
    out = conv(big, torch.randn(64, 6, dtype=torch.float64))
    assert 0.8 < float(out.detach().std()) < 1.2


def test_resampling_keeps_flat_images_flat_and_halves_or_doubles_the_size():
    flat = torch.full((1, 2, 8, 8), 0.7)
    up, down = upsample2d(flat), downsample2d(flat)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    assert torch.allclose(up[..., 2:-2, 2:-2], flat[0, 0, 0, 0]), "gain 4 after zero insertion"
    assert torch.allclose(down[..., 1:-1, 1:-1], flat[0, 0, 0, 0])
    ramp = torch.arange(16.0).repeat(16, 1)[None, None]
    assert torch.allclose(downsample2d(ramp)[..., 1:-1, 1:-1].diff(dim=-1), torch.tensor(2.0))


@pytest.mark.parametrize("resolution", [8, 16, 64])
def test_generator_and_discriminator_shapes(resolution):
    cfg = GeneratorConfig(
        resolution=resolution, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16
    )
    g, d = Generator(cfg), Discriminator(cfg)
    img = g(torch.randn(4, 16))
    assert img.shape == (4, 3, resolution, resolution)
    assert cfg.num_ws == 2 * int(np.log2(resolution)) - 2
    logits = d(img)
    assert logits.shape == (4,)
    logits.sum().backward()
    dead = [n for n, p in list(g.named_parameters()) + list(d.named_parameters()) if p.grad is None]
    # the noise strengths get gradients too (random noise is on by default)
    assert not dead, dead


def test_generator_latents_noise_and_truncation():
    g = _generator(0)
    a, b = g.sample(2, seed=1), g.sample(2, seed=1)
    assert np.array_equal(a, b), "same seed, const noise: same images"
    assert not np.array_equal(a[0], a[1]), "different latents, different images"
    z = torch.randn(2, TINY.z_dim)
    with torch.no_grad():
        r1, r2 = g(z, noise_mode="random"), g(z, noise_mode="random")
        assert not torch.equal(r1, r2), "random noise changes the image"
        g.mapping(torch.randn(256, TINY.z_dim), update_w_avg=True)
        squeezed = g(torch.randn(3, TINY.z_dim), truncation=0.0, noise_mode="const")
    assert torch.allclose(squeezed[0], squeezed[1], atol=1e-6), (
        "truncation 0: every sample is the average face"
    )
    with pytest.raises(ConfigError, match="power of two"):
        GeneratorConfig(resolution=48)


def test_fusion_with_shares_0_and_1_reproduces_each_model_exactly():
    face, style = _generator(0), _generator(1)
    z = torch.randn(3, TINY.z_dim)
    with torch.no_grad():
        want_face, want_style = face(z, noise_mode="const"), style(z, noise_mode="const")
        for schedule, want in (("linear:0", want_face), ("linear:1", want_style)):
            got = fuse_generators(face, style, schedule)(z, noise_mode="const")
            assert torch.equal(got, want), schedule
        swapped = fuse_generators(face, style, "swap:8")
        sd, fa, st = swapped.state_dict(), face.state_dict(), style.state_dict()
        for name, value in sd.items():
            res = swapped.resolution_of(name)
            assert torch.equal(value, fa[name] if res is None or res <= 8 else st[name]), name
        mixed = swapped(z, noise_mode="const")
        assert not torch.equal(mixed, want_face) and not torch.equal(mixed, want_style)
        # chained ("model dolls"): a fusion is a generator like any other
        doll = fuse_generators(swapped, _generator(2), "sigmoid:16:0.5")
        assert doll(z, noise_mode="const").shape == want_face.shape


def test_schedules():
    s = parse_schedule("sigmoid:16", 64)
    assert list(s) == [4, 8, 16, 32, 64]
    assert s[4] < 0.05 and s[64] > 0.95 and all(a < b for a, b in itertools.pairwise(s.values()))
    assert parse_schedule("swap:16", 32) == {4: 0.0, 8: 0.0, 16: 0.0, 32: 1.0}
    assert parse_schedule("layers:0,0.5,1,1", 32) == {4: 0.0, 8: 0.5, 16: 1.0, 32: 1.0}
    for bad in ("swap:12", "swap:128", "linear:2", "layers:0,1", "cubic:3", "sigmoid:16:0"):
        with pytest.raises(ConfigError):
            parse_schedule(bad, 64)
    with pytest.raises(ConfigError, match="same shape"):
        fuse_generators(
            _generator(0),
            Generator(
                GeneratorConfig(
                    resolution=16, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32
                )
            ),
            "linear:0.5",
        )


def test_safetensors_round_trip_and_refusals(tmp_path):
    g = _generator(3)
    path = save_generator(tmp_path / "g.safetensors", g, extra={"note": "test"})
    again = load_generator(path)
    z = torch.randn(2, TINY.z_dim)
    with torch.no_grad():
        assert torch.equal(g(z, noise_mode="const"), again(z, noise_mode="const"))
    assert again.cfg == g.cfg
    # a pickle is refused before anything is unpickled
    pickled = tmp_path / "g.pt"
    torch.save(g.state_dict(), pickled)
    with pytest.raises(ModelError):
        load_generator(pickled)
    legacy = tmp_path / "g.pkl"
    import pickle

    legacy.write_bytes(pickle.dumps({"G": 1}))
    with pytest.raises(UnsafeModelError):
        load_generator(legacy)
    # safetensors that are not a generator
    from portraitfx.models.load import save_safetensors

    other = save_safetensors(tmp_path / "other.safetensors", {"w": torch.zeros(2)})
    with pytest.raises(ModelError, match="not a portraitfx StyleGAN generator"):
        load_generator(other)


def test_cli_init_fuse_sample(tmp_path, capsys):
    from portraitfx.cli.main import main
    from portraitfx.io.images import load_image

    base = ["stylegan", "init", "-r", "16", "--channel-base", "128", "--channel-max", "16", "--z-dim", "16",
            "--mapping-layers", "2"]  # fmt: skip
    assert main([*base, "-o", str(tmp_path / "a.safetensors")]) == 0
    assert main([*base, "--seed", "1", "-o", str(tmp_path / "b.safetensors")]) == 0
    assert main(["stylegan", "fuse", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"),
                 "-s", "swap:8", "-o", str(tmp_path / "f.safetensors"), "--preview", str(tmp_path / "f.png"),
                 "-n", "4"]) == 0  # fmt: skip
    sheet = load_image(tmp_path / "f.png")
    assert sheet.shape[0] > 3 * 16 and sheet.shape[1] > 4 * 16
    assert (
        main(
            ["stylegan", "sample", str(tmp_path / "f.safetensors"), "-n", "4", "-o", str(tmp_path / "s.png")]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["stylegan", "fuse", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"),
                 "-s", "swap:5", "-o", str(tmp_path / "x.safetensors")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("up", [False, True])
def test_both_modulated_conv_forms_agree_and_upsampling_equals_zero_insertion_then_conv(up):
    torch.manual_seed(1)
    fast = ModulatedConv2d(4, 6, 3, w_dim=5, up=up).double()
    fused = ModulatedConv2d(4, 6, 3, w_dim=5, up=up, fused=True).double()
    fused.load_state_dict(fast.state_dict())
    x, w = torch.randn(3, 4, 8, 8, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    a, b = fast(x, w), fused(x, w)
    assert a.shape == (3, 6, 16, 16) if up else (3, 6, 8, 8)
    assert torch.allclose(a, b, atol=1e-10)
    if up:  # the transposed convolution is zero insertion + filter + 'same' convolution (inside)
        weight = fast.modulated_weight(fast.affine(w))
        for i in range(3):
            ref = torch.nn.functional.conv2d(upsample2d(x[i : i + 1]), weight[i], padding=1)
            assert torch.allclose(a[i : i + 1, :, 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=1e-10)
