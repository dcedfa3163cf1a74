"""StyleGAN3 generators: the official implementation's outputs reproduced, equivariance, conversion, tools."""

from __future__ import annotations

import copy
import math
import pickle
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from portraitfx.errors import ModelError  # noqa: E402
from portraitfx.models.load import load_safetensors  # noqa: E402
from portraitfx.train.stylegan import fuse_generators, load_generator, save_generator  # noqa: E402
from portraitfx.train.stylegan.convert import convert_official_pickle  # noqa: E402
from portraitfx.train.stylegan.networks3 import Generator3  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "stylegan3"


@pytest.mark.parametrize("config", ["t", "r"])
def test_the_official_implementations_outputs_are_reproduced(config):
    g = load_generator(DATA / f"official-{config}16.safetensors")
    ref = load_safetensors(DATA / f"official-{config}16-outputs.safetensors")
    assert isinstance(g, Generator3) and g.cfg.radial_filters == (config == "r")
    with torch.no_grad():
        ws = g.mapping(ref["z"])
        torch.testing.assert_close(ws, ref["ws"], atol=1e-6, rtol=0)
        torch.testing.assert_close(g.synthesis(ref["ws"]), ref["img"], atol=1e-5, rtol=0)
        torch.testing.assert_close(g(ref["z"], truncation=0.7), ref["img_t"], atol=1e-5, rtol=0)
    # the filters, sizes and padding worked out from the settings are the recorded ones
    fresh = Generator3(g.cfg).state_dict()
    for name, value in g.state_dict().items():
        if name.endswith("_filter"):
            torch.testing.assert_close(fresh[name], value, atol=1e-7, rtol=0)


def test_translating_the_input_translates_the_image():
    """Alias-free: a shift of the Fourier features by 2 px moves the picture by 2 px, nothing else."""
    g = load_generator(DATA / "official-t16.safetensors")
    ws = g.mapping(torch.randn(3, 8, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        a = g.synthesis(ws)
        g.synthesis.input.transform.copy_(
            torch.tensor([[1.0, 0.0, 2 / 16], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        )
        b = g.synthesis(ws)
    same = (a[..., 2:-2, 4:-2] - b[..., 2:-2, 2:-4]).square().mean()
    assert 10 * math.log10(float(a.var()) / float(same)) > 60  # dB
    assert float((a - b).square().mean()) > 0.05 * float(a.var())  # it did move


def _official_pickle(g: Generator3, path: Path, Persistent) -> None:
    """``g`` laid out as NVIDIA's StyleGAN3 pickle: persistent objects, numpy attributes, embedded code."""

    def node(name, params=(), buffers=(), modules=(), **attrs):
        state = {
            "_parameters": OrderedDict(params),
            "_buffers": OrderedDict(buffers),
            "_modules": OrderedDict(modules),
            "training": False,
            **attrs,
        }
        return Persistent(name, state)

    def fc(layer):
        return node("FullyConnectedLayer", [("weight", layer.weight.detach()), ("bias", layer.bias.detach())])

    cfg = g.cfg
    mapping = node(
        "MappingNetwork",
        buffers=[("w_avg", g.mapping.w_avg.clone())],
        modules=[(f"fc{i}", fc(layer)) for i, layer in enumerate(g.mapping.layers)],
    )
    inp = g.synthesis.input
    inp_node = node(
        "SynthesisInput",
        params=[("weight", inp.weight.detach())],
        buffers=[("transform", inp.transform), ("freqs", inp.freqs), ("phases", inp.phases)],
        modules=[("affine", fc(inp.affine))],
        size=np.broadcast_to(np.asarray(inp.size), [2]),
        sampling_rate=np.float64(inp.rate),
        bandwidth=np.float64(inp.bandwidth),
    )
    layers = []
    for name, layer in g.synthesis.layers.items():
        s = layer.spec
        buffers = [
            ("magnitude_ema", layer.magnitude_ema),
            ("up_filter", layer.up_filter),
            ("down_filter", layer.down_filter),
        ]
        layers.append((name, node(
            "SynthesisLayer",
            params=[("weight", layer.weight.detach()), ("bias", layer.bias.detach())],
            buffers=buffers,
            modules=[("affine", fc(layer.affine))],
            in_size=np.broadcast_to(np.asarray(s.in_size), [2]), out_size=np.broadcast_to(np.asarray(s.out_size), [2]),
            in_sampling_rate=s.in_rate, out_sampling_rate=s.out_rate, in_cutoff=np.float64(s.in_cutoff),
            up_factor=s.up, down_factor=s.down, up_taps=s.up_taps, down_taps=s.down_taps,
            padding=list(s.padding), conv_kernel=s.kernel, conv_clamp=cfg.conv_clamp, is_torgb=s.torgb,
        )))  # fmt: skip
    synthesis = node(
        "SynthesisNetwork",
        modules=[("input", inp_node), *layers],
        num_layers=cfg.num_layers, num_critical=cfg.num_critical, margin_size=cfg.margin_size,
        output_scale=cfg.output_scale, layer_names=[n for n, _ in layers], img_resolution=cfg.resolution,
    )  # fmt: skip
    kwargs = {
        "z_dim": cfg.z_dim, "c_dim": 0, "w_dim": cfg.w_dim, "img_resolution": cfg.resolution, "img_channels": 3,
        "mapping_kwargs": {"num_layers": cfg.mapping_layers}, "channel_base": cfg.channel_base,
        "channel_max": cfg.channel_max, "num_layers": cfg.num_layers, "conv_kernel": cfg.conv_kernel,
        "use_radial_filters": cfg.radial_filters,
    }  # fmt: skip
    gen = node(
        "Generator", modules=[("synthesis", synthesis), ("mapping", mapping)], c_dim=0, _init_kwargs=kwargs
    )
    path.write_bytes(pickle.dumps({"G_ema": gen, "augment_pipe": None}, protocol=4))


def test_an_official_stylegan3_pickle_converts_exactly_and_runs_no_code(tmp_path, persistent_class):
    import dataclasses

    g = load_generator(DATA / "official-r16.safetensors")
    pkl, bad = tmp_path / "stylegan3-r.pkl", tmp_path / "tampered.pkl"
    _official_pickle(g, pkl, persistent_class)
    # a layer whose recorded padding differs from what the settings give
    tampered = copy.deepcopy(g)
    layer = tampered.synthesis.layers["L3_36_16"]
    layer.spec = dataclasses.replace(layer.spec, padding=(1, 2, 1, 2))
    _official_pickle(tampered, bad, persistent_class)
    for name in ("torch_utils.persistence", "torch_utils"):  # the converter must not need them
        sys.modules.pop(name, None)
    out = convert_official_pickle(pkl, tmp_path / "r.safetensors", trust=True)
    assert not persistent_class.marker.exists(), "the embedded source code ran"
    converted = load_generator(out)
    assert converted.cfg == g.cfg
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(converted(z), g(z))
    with pytest.raises(ModelError, match="L3_36_16: padding"):
        convert_official_pickle(bad, tmp_path / "bad.safetensors", trust=True)


def test_stylegan3_generators_sample_fuse_invert_and_make_pairs(tmp_path, capsys):
    from portraitfx.cli.main import main
    from portraitfx.train.invert import project, psnr
    from portraitfx.train.stylegan.pairs import PairJob, generate_pairs

    face = load_generator(DATA / "official-t16.safetensors")
    torch.manual_seed(1)
    style = Generator3(face.cfg).eval()
    with torch.no_grad():  # a "style" model: the face model with its high-resolution layers changed
        for name, p in style.named_parameters():
            p.copy_(
                face.state_dict()[name] + (0.3 * torch.randn_like(p) if "L5" in name or "L6" in name else 0)
            )
    assert face.sample(4, seed=2).shape == (4, 16, 16, 3)
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(fuse_generators(face, style, "linear:0")(z), face(z))
        assert torch.equal(fuse_generators(face, style, "linear:1")(z), style(z))
        mixed = fuse_generators(face, style, "swap:8")  # every StyleGAN3 layer here runs at 16 px or more
        assert torch.equal(mixed(z), style(z))
    with torch.no_grad():
        target = face(torch.randn(1, 8, generator=torch.Generator().manual_seed(5)))
    start = project(face, target, steps=1)
    found = project(face, target, steps=60)
    assert found.noise == {} and psnr(found.image, target) > psnr(start.image, target) + 3
    assert generate_pairs(face, style, tmp_path / "pairs", PairJob(n=3, truncation=0.8)) == 3

    path = save_generator(tmp_path / "sg3.safetensors", face)
    assert main(["stylegan", "sample", str(path), "-n", "4", "-o", str(tmp_path / "s.png")]) == 0
    data = tmp_path / "data"
    data.mkdir()
    for i, img in enumerate(face.sample(2)):
        from portraitfx.io.images import save_image

        save_image(data / f"{i}.png", img)
    assert main(["stylegan", "train", str(data), "-o", str(tmp_path / "run"), "-r", "16", "--resume", str(path),
                 "--kimg", "0.01", "-q"]) == 4  # fmt: skip
    assert "trains StyleGAN2 generators only" in capsys.readouterr().err
