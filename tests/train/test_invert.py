"""Inversion: an image the generator drew is found again; the CLI writes the sheet and latents."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from portraitfx.errors import ConfigError, ModelError  # noqa: E402
from portraitfx.train.invert import VGGFeatures, project, psnr, pyramid_features  # noqa: E402
from portraitfx.train.stylegan import GeneratorConfig, save_generator  # noqa: E402

CFG = GeneratorConfig(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32)


@pytest.fixture(scope="module")
def generator(generator32):
    return generator32


@pytest.mark.parametrize("space", ["w", "w+"])
def test_an_image_the_generator_drew_is_recovered(generator, space):
    with torch.no_grad():
        target = generator(torch.randn(1, 32, generator=torch.Generator().manual_seed(7)), noise_mode="const")
        average = generator.synthesis(
            generator.mapping(torch.randn(500, 32)).mean(0, keepdim=True), noise_mode="const"
        )
    result = project(generator, target, space=space, steps=200)
    assert result.ws.shape == (1, CFG.num_ws, 32)
    if space == "w":
        assert torch.equal(result.ws[:, 0], result.ws[:, -1])
    got, start = psnr(result.image, target), psnr(average, target)
    assert got > 22.0 and got > start + 10.0, (got, start)
    assert result.losses[-1] < 0.1 * result.losses[0]
    # the noise maps stay noise-like (normalised, little autocorrelation)
    for n in result.noise.values():
        assert abs(float(n.mean())) < 1e-4 and abs(float(n.square().mean()) - 1.0) < 1e-3


def test_bad_arguments_and_feature_spaces(generator, tmp_path):
    target = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ConfigError, match="target must be"):
        project(generator, target)
    with pytest.raises(ConfigError, match="space"):
        project(generator, torch.zeros(1, 3, 32, 32), space="z")  # type: ignore[arg-type]
    feats = pyramid_features(torch.zeros(2, 3, 32, 32))
    assert len(feats) == 3 * 3 + 1  # 3 levels down to 8 px, and the low-pass rest
    # VGG16 weights come from a safetensors file in torchvision's layout; others are refused
    net = VGGFeatures()
    from portraitfx.models.load import save_safetensors

    path = save_safetensors(
        tmp_path / "vgg.safetensors", {k: v for k, v in net.features.state_dict().items()}
    )
    loaded = VGGFeatures.from_file(path)
    out = loaded(torch.zeros(1, 3, 32, 32))
    assert [o.shape[1] for o in out] == [64, 128, 256, 512, 512]
    bad = save_safetensors(tmp_path / "bad.safetensors", {"x": torch.zeros(1)})
    with pytest.raises(ModelError, match="not VGG16"):
        VGGFeatures.from_file(bad)


def test_cli_invert(generator, tmp_path):
    from portraitfx.cli.main import main
    from portraitfx.io.images import load_image, save_image
    from portraitfx.models.load import load_safetensors
    from portraitfx.train.stylegan.networks import to_uint8

    model = save_generator(tmp_path / "g.safetensors", generator)
    with torch.no_grad():
        img = to_uint8(generator(torch.randn(1, 32), noise_mode="const"))[0]
    save_image(tmp_path / "target.png", img)
    args = ["stylegan", "invert", str(tmp_path / "target.png"), "-m", str(model), "-o", str(tmp_path / "inv.png"),
            "--latents", str(tmp_path / "lat.safetensors"), "--steps", "30", "-q"]  # fmt: skip
    assert main(args) == 0
    assert load_image(tmp_path / "inv.png").shape == (32, 64, 3)
    assert load_safetensors(tmp_path / "lat.safetensors")["ws"].shape == (1, CFG.num_ws, 32)
