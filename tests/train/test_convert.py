"""The official-pickle converter: refused without consent, never runs the file's code, exact weights."""

from __future__ import annotations

import os
import pickle
import sys
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")

from portraitfx.errors import ConfigError, UnsafeModelError  # noqa: E402
from portraitfx.train.stylegan import Generator, GeneratorConfig, load_generator  # noqa: E402
from portraitfx.train.stylegan.convert import convert_official_pickle  # noqa: E402

CFG = GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


def _official_name(ours: str) -> str:
    """Our parameter names in the official StyleGAN2-ADA layout."""
    n = ours.replace("synthesis.blocks.", "synthesis.").replace(".conv.affine.", ".affine.")
    n = n.replace("mapping.layers.", "mapping.fc")
    return n.replace(".conv.weight", ".weight")


@pytest.fixture
def official_pickle(tmp_path, persistent_class):
    """A pickle laid out as NVIDIA's (persistent objects with embedded source), made from our model."""
    Persistent = persistent_class
    torch.manual_seed(3)
    ours = Generator(CFG).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    tree: dict = {}
    for name, value in ours.state_dict().items():
        official = _official_name(name)
        if official.endswith("noise_const"):
            value = value[0, 0]  # official noise maps are [R, R]
        *path, leaf = official.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node.setdefault("__tensors__", {})[leaf] = value.clone()
    tree["synthesis"]["b8"]["conv0"].setdefault("__tensors__", {})["resample_filter"] = torch.ones(4, 4)

    def build(name, node):
        params, buffers, modules = OrderedDict(), OrderedDict(), OrderedDict()
        for leaf, value in node.get("__tensors__", {}).items():
            if leaf in ("w_avg", "noise_const", "resample_filter"):
                buffers[leaf] = value
            else:
                params[leaf] = torch.nn.Parameter(value)
        for child, sub in node.items():
            if child != "__tensors__":
                modules[child] = build(child, sub)
        state = {"_parameters": params, "_buffers": buffers, "_modules": modules, "training": False}
        if name == "fc0":
            state["bias_gain"] = 0.01
        return Persistent(name, state)

    g = build("Generator", tree)
    g.meta["state"].update(z_dim=16, w_dim=16, c_dim=0, img_resolution=16)
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps({"G": g, "D": None, "G_ema": g}, protocol=4))
    return path, ours


def test_conversion_is_exact_and_runs_no_code_from_the_file(official_pickle, persistent_class, tmp_path):
    path, ours = official_pickle
    for name in ("torch_utils.persistence", "torch_utils"):  # the converter must not need them
        sys.modules.pop(name, None)
    out = convert_official_pickle(path, tmp_path / "g.safetensors", trust=True)
    assert not persistent_class.marker.exists(), "the embedded source code ran"
    converted = load_generator(out)
    assert converted.cfg == CFG
    z = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.equal(converted(z, noise_mode="const"), ours(z, noise_mode="const"))


def test_refused_without_consent_and_for_unexpected_globals(
    official_pickle, persistent_class, tmp_path, capsys
):
    from portraitfx.cli.main import main

    path, _ = official_pickle
    with pytest.raises(ConfigError, match="--trust-pickle"):
        convert_official_pickle(path, tmp_path / "g.safetensors")
    assert main(["convert", "stylegan", str(path), "-o", str(tmp_path / "g.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: refusing to read") and "\n" not in err
    assert not (tmp_path / "g.safetensors").exists()

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {persistent_class.marker}",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": Evil()}))
    with pytest.raises(UnsafeModelError, match="system"):
        convert_official_pickle(evil, tmp_path / "e.safetensors", trust=True)
    assert not persistent_class.marker.exists()
    assert (
        main(["convert", "stylegan", str(path), "-o", str(tmp_path / "ok.safetensors"), "--trust-pickle"])
        == 0
    )
    assert "warning: reading the pickle" in capsys.readouterr().err
